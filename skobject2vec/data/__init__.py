"""Data handling: SageMaker JSON Lines records, batching, negative sampling, vocabularies."""

from .batching import PairData, Ragged

__all__ = ["PairData", "Ragged"]
