"""Data: SageMaker JSON Lines records, ragged batching, streaming, negative sampling."""

from .batching import PairData, Ragged

__all__ = ["PairData", "Ragged"]
