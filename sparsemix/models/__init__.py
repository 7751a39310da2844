"""Sequence models: the Paramixer classifier and the baselines it is compared with."""
from .cdil_cnn import CDILClassifier
from .sequence_classifier import BLOCKS, STEMS, WEIGHTS_FROM, SequenceClassifier
from .registry import MODELS, build_model
from .rc_conjoin import ReverseComplementConjoined
from ._sequence_io import POOLINGS, POSITION_INITS
from .transformer import TransformerClassifier

__all__ = ["SequenceClassifier", "TransformerClassifier", "CDILClassifier", "MODELS", "build_model",
           "POOLINGS", "POSITION_INITS", "BLOCKS", "STEMS", "WEIGHTS_FROM",
           "ReverseComplementConjoined"]
