"""Learnable layers: the sparse factor, the Paramixer block, its encoder layer and the conv stem,
plus their shared helpers."""
from .backends import BACKENDS
from .kmer_embedding import KmerEmbedding
from .local_conv_stem import LocalConvStem
from .paramixer import PARAMIXER_INITS, WEIGHT_MLPS, Paramixer
from .paramixer_encoder_layer import MIX_INITS, MIX_MODES, SCORE_SCALES, ParamixerEncoderLayer
from .sequences import positions_in_sequence, sequence_lengths
from .sparse_factor_conv import SparseFactorConv
from .stacked_weights import shared_weights, stacked_weights

__all__ = ["SparseFactorConv", "Paramixer", "ParamixerEncoderLayer", "LocalConvStem",
           "KmerEmbedding", "stacked_weights", "shared_weights", "sequence_lengths", "positions_in_sequence",
           "BACKENDS", "MIX_INITS", "MIX_MODES", "SCORE_SCALES", "PARAMIXER_INITS", "WEIGHT_MLPS"]
