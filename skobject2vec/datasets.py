"""Small real data sets as token-id pairs, from data that ships inside installed packages.

Nothing here downloads anything.
"""

from __future__ import annotations

import numpy as np

__all__ = ["digit_tokens", "load_digit_pairs"]

_LEVELS = 4  # intensity levels per pixel (0 = blank, never a token)


def digit_tokens(images: np.ndarray) -> list[list[int]]:
    """Turn 8x8 digit images (values 0-16) into token sequences.

    Each non-blank pixel becomes one token ``position * 4 + level`` with level
    1-3 its quantised intensity, so ids encode both where and how dark a stroke is
    (vocabulary 256). Sequences are ragged: one token per inked pixel.
    """
    flat = np.asarray(images).reshape(len(images), -1)
    levels = np.ceil(flat / 16.0 * (_LEVELS - 1)).astype(np.int64)  # 0..3
    positions = np.arange(flat.shape[1])
    return [(positions[row > 0] * _LEVELS + row[row > 0]).tolist() for row in levels]


def load_digit_pairs(n_pairs: int = 4000, random_state=0, test_size: float = 0.25):
    """Pairs of scikit-learn's handwritten digits: label 1 when both show the same digit.

    Images are split into train and test images first, so no test pair reuses a
    training image. Half of the pairs are same-digit pairs.

    Returns
    -------
    X_train, y_train, X_test, y_test : list of dict, ndarray
        Records ``{"in0": [...], "in1": [...]}`` and 0/1 labels.
    images : dict
        ``{"train": (tokens, digits), "test": (tokens, digits)}`` for single-image embeddings.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(random_state)
    order = rng.permutation(len(digits.target))
    cut = int(len(order) * (1 - test_size))
    split = {"train": order[:cut], "test": order[cut:]}
    tokens = digit_tokens(digits.images)
    out = {}
    for name, index in split.items():
        labels = digits.target[index]
        n = n_pairs if name == "train" else max(int(n_pairs * test_size / (1 - test_size)), 2)
        first = rng.choice(index, n)
        same = rng.random(n) < 0.5
        second = np.empty(n, dtype=np.int64)
        by_digit = {d: index[labels == d] for d in range(10)}
        for i, (a, s) in enumerate(zip(first, same)):
            digit = digits.target[a]
            pool = by_digit[digit] if s else index[labels != digit]
            second[i] = rng.choice(pool)
        X = [{"in0": tokens[a], "in1": tokens[b]} for a, b in zip(first, second)]
        y = (digits.target[first] == digits.target[second]).astype(np.int64)
        out[name] = (X, y, ([tokens[i] for i in index], digits.target[index]))
    return out["train"][0], out["train"][1], out["test"][0], out["test"][1], {
        "train": out["train"][2], "test": out["test"][2]}
