"""The torch network: encoders, comparator and the pair model."""

from .comparator import Comparator, parse_comparator_list
from .encoders import build_encoder
from .model import Object2VecNet

__all__ = ["Comparator", "parse_comparator_list", "build_encoder", "Object2VecNet"]
