"""Input checks for pairs of token-id sequences, with messages that say what and where.

Three input shapes are accepted (see :func:`to_pairs`):

* a 2-D numeric array ``(n, d)``: columns ``[:d // 2]`` are in0, the rest in1;
* SageMaker records: a list, tuple or 1-D object array of mappings with
  ``"in0"``/``"in1"`` lists of token ids (ragged lengths);
* a pandas DataFrame with ``in0``/``in1`` columns holding lists.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import chain, islice

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import check_non_negative, validate_data

from .data.batching import PairData, Ragged

FIELDS = ("in0", "in1")
_MAX_ID = 2 ** 53  # larger ids cannot be told apart once stored as float


def is_dataframe_of_records(X) -> bool:
    columns = getattr(X, "columns", None)
    return columns is not None and hasattr(X, "iloc") and any(f in list(columns) for f in FIELDS)


def looks_like_records(X) -> bool:
    """True for SageMaker-style record rows (never for arrays or sparse matrices).

    scipy's dok_matrix subclasses dict, so sparse input is ruled out first.
    """
    if sp.issparse(X):
        return False
    if is_dataframe_of_records(X):
        return True
    if isinstance(X, np.ndarray):
        if X.ndim != 1 or X.dtype != object:
            return False
    elif not isinstance(X, (list, tuple)):
        return False
    return len(X) > 0 and isinstance(X[0], Mapping)


def _record_error(what, index, field, message):
    where = f"record {index}" + (f", field {field!r}" if field else "")
    return ValueError(f"{what}: {where}: {message}")


def _locate_bad_sequence(sequences, field, what):
    """Slow path: find the first record whose ``field`` is not a list of token ids."""
    for i, seq in enumerate(sequences):
        if isinstance(seq, (str, bytes, Mapping)) or not hasattr(seq, "__len__"):
            raise _record_error(what, i, field, f"expected a list of integer token ids, got {seq!r:.80}")
        for token in seq:
            if isinstance(token, (bool, np.bool_)) or not isinstance(token, (int, float, np.integer, np.floating)):
                raise _record_error(
                    what, i, field,
                    f"expected a flat list of integer token ids, got the element {token!r:.80}"
                    + (" (nested lists are not allowed)" if isinstance(token, (list, tuple)) else ""),
                )
            if isinstance(token, (int, np.integer)) and token >= _MAX_ID:
                raise _record_error(what, i, field, f"token ids must be integers below 2**53, got {token}")
    raise AssertionError("no bad sequence found")  # pragma: no cover


#: Tokens converted per step: bounds the temporary Python list to a few MB whatever n is.
_CHUNK = 1 << 20


def ragged_from_sequences(sequences, field: str, what: str = "X") -> Ragged:
    """Validate a list of token-id lists and store it flat.

    Raises ValueError naming the record and field for: a value that is not a flat
    list of numbers, an empty sequence, a non-integral or too large id, or a negative id.
    Memory: the result (8 bytes per token) plus one chunk of :data:`_CHUNK` tokens.
    """
    n = len(sequences)
    try:
        if any(isinstance(seq, (str, bytes, Mapping)) for seq in sequences):
            raise TypeError
        lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=n)
    except (TypeError, ValueError):
        _locate_bad_sequence(sequences, field, what)
        raise
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    empty = np.flatnonzero(lengths == 0)
    if empty.size:
        raise _record_error(what, int(empty[0]), field, "empty sequence; every record needs at least one token id")

    def record_of(position):
        return int(np.searchsorted(offsets, position, side="right") - 1)

    flat = np.empty(int(offsets[-1]), dtype=np.int64)
    tokens = chain.from_iterable(sequences)
    for start in range(0, len(flat), _CHUNK):
        try:
            # numpy infers the element type: strings, booleans or nested lists do not give a
            # numeric array, and the slow path then names the offending record.
            chunk = np.asarray(list(islice(tokens, _CHUNK)))
            if chunk.dtype.kind not in "iuf" or chunk.ndim != 1:
                raise TypeError
        except (TypeError, ValueError):
            _locate_bad_sequence(sequences, field, what)
            raise
        bad = chunk >= _MAX_ID
        if chunk.dtype.kind == "f":
            bad |= ~np.isfinite(chunk) | (chunk != np.floor(chunk))
        if bad.any():
            position = int(np.argmax(bad))
            value = chunk[position].item()
            raise _record_error(what, record_of(start + position), field,
                                f"token ids must be integers below 2**53, got {value!r}")
        flat[start:start + len(chunk)] = chunk
    negative = np.flatnonzero(flat < 0)
    if negative.size:
        # "Negative values in data" is the phrase scikit-learn uses for this error.
        raise ValueError(
            f"Negative values in data passed to {what}: record {record_of(negative[0])}, field {field!r} "
            f"has token id {int(flat[negative[0]])}; token ids must be >= 0."
        )
    return Ragged(flat, offsets)


def _records_sequences(X, what):
    """Return (in0 list or None, in1 list or None) from records or a DataFrame."""
    if is_dataframe_of_records(X):
        columns = [f for f in FIELDS if f in X.columns]
        return tuple(list(X[f]) if f in columns else None for f in FIELDS), [
            tuple(f for f in FIELDS if f in columns)
        ] * len(X)
    seqs = {f: [] for f in FIELDS}
    present = []
    for i, record in enumerate(X):
        if not isinstance(record, Mapping):
            raise _record_error(what, i, None, f"expected a record like {{'in0': [...], 'in1': [...]}}, "
                                               f"got {type(record).__name__}")
        keys = tuple(f for f in FIELDS if f in record)
        present.append(keys)
        for f in keys:
            seqs[f].append(record[f])
    return (seqs["in0"], seqs["in1"]), present


def records_to_pairs(X, *, what: str = "X", single_side_ok: bool = False) -> PairData:
    """Validate record rows into :class:`PairData`.

    With ``single_side_ok`` the records may all hold only ``in0`` or all only
    ``in1`` (SageMaker's embedding mode); a mix of shapes is an error.
    """
    (in0, in1), present = _records_sequences(X, what)
    if not present:
        raise ValueError(f"{what}: no records; expected at least one record with 'in0' and/or 'in1'.")
    first = present[0]
    if not single_side_ok or first == FIELDS or not first:
        expected = FIELDS
    else:
        expected = first
    for i, keys in enumerate(present):
        if keys != expected:
            missing = [f for f in expected if f not in keys]
            if missing:
                raise _record_error(what, i, missing[0], f"missing key {missing[0]!r}"
                                    + ("; every record needs both 'in0' and 'in1'" if not single_side_ok else
                                       f"; records must all have the same fields as record 0 {list(expected)}"))
            extra = [f for f in keys if f not in expected]
            raise _record_error(what, i, extra[0], f"has {extra[0]!r} but record 0 has only {list(expected)}; "
                                "a request holds either pairs or single inputs, not both")
    return PairData(
        ragged_from_sequences(in0, "in0", what) if "in0" in expected else None,
        ragged_from_sequences(in1, "in1", what) if "in1" in expected else None,
    )


def check_token_array(X: np.ndarray, what: str) -> np.ndarray:
    """Integrality and sign of an already validated numeric array; returns int64."""
    if X.dtype.kind == "f":
        bad = X != np.floor(X)
        if bad.any():
            raise ValueError(
                f"{what} expects integer token ids; got non-integral values such as {X[bad][:3].tolist()}."
            )
    check_non_negative(X, f"{what} (token ids)")
    return np.asarray(X, dtype=np.int64)


def array_to_pairs(X: np.ndarray) -> PairData:
    half = X.shape[1] // 2
    return PairData(Ragged.from_dense(X[:, :half]), Ragged.from_dense(X[:, half:]))


def check_pairs(estimator, X, *, reset: bool, y="no_validation", single_side_ok: bool = False,
                y_numeric=False):
    """Validate ``X`` (and ``y`` when given) for ``estimator``.

    ``y="no_validation"`` skips y; ``y=None`` (a fit without y) raises scikit-learn's
    "requires y to be passed" error. Returns ``(pairs, y)``. The array path goes through scikit-learn's
    ``validate_data`` so that ``n_features_in_`` and the standard messages hold;
    the token checks come after, in the order scikit-learn's checks expect.
    """
    name = type(estimator).__name__
    if looks_like_records(X):
        if reset:
            for attr in ("n_features_in_", "feature_names_in_"):
                if hasattr(estimator, attr):
                    delattr(estimator, attr)
        if not (isinstance(y, str) and y == "no_validation"):
            y = validate_data(estimator, X="no_validation", y=y, y_numeric=y_numeric)
            y = np.asarray(y)
            if y.ndim == 2 and y.shape[1] == 1:
                y = y.ravel()
            if len(y) != len(X):
                raise ValueError(f"X has {len(X)} records but y has {len(y)} values; they must match.")
        return records_to_pairs(X, what=name, single_side_ok=single_side_ok), y
    kwargs = dict(dtype="numeric", ensure_all_finite=True, accept_sparse=False, reset=reset)
    if reset:
        kwargs["ensure_min_features"] = 2
    if not (isinstance(y, str) and y == "no_validation"):
        X, y = validate_data(estimator, X, y, y_numeric=y_numeric, **kwargs)
    else:
        X = validate_data(estimator, X, **kwargs)
    return X, y


def check_vocab(ragged: Ragged, vocab_size: int, field: str, what: str) -> None:
    """At fit time, ids must be ``< vocab_size`` (SageMaker fails the job otherwise)."""
    bad = np.flatnonzero(ragged.values >= vocab_size)
    if bad.size:
        record = int(np.searchsorted(ragged.offsets, bad[0], side="right") - 1)
        raise ValueError(
            f"{what}: record {record}, field {field!r}: token id {int(ragged.values[bad[0]])} is not less "
            f"than vocab_size={vocab_size} (enc{field[-1]}_vocab_size)."
        )
