"""Negative sampling (SageMaker's ``negative_sampling_rate``)."""

from __future__ import annotations

import numpy as np


def sample_negatives(positives: np.ndarray, n_records: int, rate: int,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """For every positive record, ``rate`` negatives that keep its in0 and take the in1
    of another record drawn uniformly (never the record itself).

    Returns ``(left, right)`` index arrays into in0 and in1.
    """
    if n_records < 2:
        raise ValueError("negative sampling needs at least 2 training records to pair in0 with another in1.")
    left = np.repeat(np.asarray(positives, dtype=np.int64), rate)
    right = rng.integers(0, n_records - 1, size=len(left))
    right += right >= left  # skip the record itself, keeping the draw uniform over the others
    return left, right
