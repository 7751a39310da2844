"""Sequence models: the Paramixer classifier and the baselines it is compared with."""
from .cdil_cnn import CDILClassifier
from .sequence_classifier import SequenceClassifier
from .transformer import TransformerClassifier

MODELS = ("paramixer", "transformer", "cdil-cnn")

__all__ = ["SequenceClassifier", "TransformerClassifier", "CDILClassifier", "MODELS"]
