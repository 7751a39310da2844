"""sparsemix: Paramixer-style sparse-factor sequence mixing in the PyTorch Geometric idiom.

>>> import torch, sparsemix
>>> block = sparsemix.Paramixer(channels=16, protocol="chord", max_len=1024)
>>> block(torch.randn(4, 1024, 16)).shape
torch.Size([4, 1024, 16])
"""
from . import reference
from .nn import LocalConvStem, Paramixer, ParamixerEncoderLayer, SparseFactorConv

__version__ = "0.1.0"
__all__ = ["SparseFactorConv", "Paramixer", "ParamixerEncoderLayer", "LocalConvStem",
           "SequenceClassifier", "reference", "__version__"]


def __getattr__(name: str):
    # The classifier lives with the training code; import it on first use to keep `import sparsemix` light.
    if name == "SequenceClassifier":
        from .models import SequenceClassifier

        return SequenceClassifier
    raise AttributeError(f"module 'sparsemix' has no attribute {name!r}")
