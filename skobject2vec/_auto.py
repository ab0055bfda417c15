"""Data-dependent defaults: what each ``"auto"`` parameter becomes for a training set.

One pure function, :func:`resolve_auto`, used by every fit path (in memory,
streamed, torchrun), so that all of them train the same model from the same data.
Each rule is measured; the measurements are on the "Choosing settings" page
(``docs/choosing_settings.rst``) and in ``benchmarks/``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DataShape", "resolve_auto", "AUTO_VALIDATION_FRACTION", "AUTO_VALIDATION_MIN_RECORDS"]

#: Hold-out for early stopping when ``validation_fraction="auto"``.
AUTO_VALIDATION_FRACTION = 0.1
#: Below this many training records no hold-out is made (too few to spare; the
#: estimator checks of scikit-learn fit on 20-30 records).
AUTO_VALIDATION_MIN_RECORDS = 1000


@dataclass(frozen=True)
class DataShape:
    """What the ``"auto"`` rules look at: the training data's size and longest sequences."""

    n_records: int
    max_lens: tuple[int, int]
    streamed: bool = False

    @property
    def sequences(self) -> bool:
        """Both sides hold sequences (not single ids): the symmetric, sentence-like case."""
        return min(self.max_lens) > 1


def _shared(p: dict, shape: DataShape) -> bool:
    if not shape.sequences or p["enc1_network"] != "enc0":
        return False
    # One table needs one vocabulary and one pretrained file (or none).
    given = (p["enc0_vocab_size"], p["enc1_vocab_size"])
    if None not in given and given[0] != given[1]:
        return False
    files = [(p[f"enc{i}_pretrained_embedding_file"], p[f"enc{i}_vocab_file"]) for i in (0, 1)]
    return files[1] == (None, None) or files[0] == files[1]


def resolve_auto(p: dict, shape: DataShape) -> dict:
    """Return a copy of the validated parameters ``p`` with every data-dependent ``"auto"`` decided.

    Rules
    -----
    shared_encoder
        True when both sides hold sequences (``shape.sequences``), enc1 copies enc0's
        configuration and nothing forces two tables (two vocabulary sizes, two
        pretrained files). Measured on STS-B from scratch: a shared encoder is what
        makes sentence pairs learnable from a few thousand examples.
    validation_fraction
        0.1 for in-memory fits of at least 1,000 records (early stopping on by
        default, as scikit-learn's HistGradientBoosting), otherwise None.
    embedding_l2
        See :data:`AUTO_EMBEDDING_L2`.
    """
    p = dict(p)
    if p["shared_encoder"] == "auto":
        p["shared_encoder"] = _shared(p, shape)
    if p["shared_encoder"]:
        p["tied_token_embedding_weight"] = True  # one encoder reads one token table
    if p["validation_fraction"] == "auto":
        big = not shape.streamed and shape.n_records >= AUTO_VALIDATION_MIN_RECORDS
        p["validation_fraction"] = AUTO_VALIDATION_FRACTION if big else None
    if p["embedding_l2"] == "auto":
        p["embedding_l2"] = AUTO_EMBEDDING_L2
    return p


#: Placeholder until measured.
AUTO_EMBEDDING_L2 = 0.0
