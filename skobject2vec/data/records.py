"""Records of token-id pairs, as users give them: SageMaker's records, DataFrames, integer arrays.

The one parser of record input for every consumer (the estimators, the CLI's JSON Lines reader,
the server, ONNX checks, the metrics): each shape becomes :class:`~skobject2vec.data.batching.PairData`
(flat token ids and offsets), with errors that name the record, the field and what was expected.

* a 2-D numeric array ``(n, d)``: columns ``[:d // 2]`` are in0, the rest in1;
* SageMaker records: a list, tuple or 1-D object array of mappings with
  ``"in0"``/``"in1"`` lists of token ids (ragged lengths);
* a pandas DataFrame with ``in0``/``in1`` columns holding lists.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import reprlib
import threading
import unicodedata
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from itertools import chain, islice
from typing import TYPE_CHECKING, Any, NoReturn, cast

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import check_non_negative

from .batching import PairData, Ragged

if TYPE_CHECKING:
    pass

FIELDS = ("in0", "in1")
_MAX_ID = 2 ** 53  # larger ids cannot be told apart once stored as float

# Error messages quote the offending value through this: ``repr`` of a list nested 1,000 deep hits
# Python's recursion limit (a RecursionError instead of the message), and a huge value floods the log.
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxstring, _REPR.maxother = 3, 8, 4, 40, 40
_REPR.maxlong = 40


def short_repr(value: object) -> str:
    """A bounded, recursion-safe ``repr`` for error messages (any input, any depth)."""
    try:
        return _REPR.repr(value)
    except Exception:  # a hostile __repr__: never let the error message itself fail
        return f"<{type(value).__name__}>"


_gc_lock = threading.Lock()
_gc_pausers = 0
_gc_was_enabled = False


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while many small containers are built.

    Parsing 524k JSON records allocates a million dicts and lists; each 700 allocations start a
    collection that walks the young objects, and the older generations get walked again and again
    as they grow: that took 3/4 of the parse time (2.4 s of 3.3 s). Nothing built here holds a cycle,
    so reference counting frees it all. Re-entrant and thread safe (the server parses on threads).
    """
    global _gc_pausers, _gc_was_enabled
    with _gc_lock:
        if _gc_pausers == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pausers += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pausers -= 1
            if _gc_pausers == 0 and _gc_was_enabled:
                gc.enable()


@functools.lru_cache(maxsize=4096)
def _normalized_key(key: object) -> str | None:
    """``"In_0"``, ``"in-0"``, ``"in０"`` (full-width digit) -> ``"in0"``: what a key was meant to be."""
    if not isinstance(key, str) or len(key) > 16:
        return None
    folded = unicodedata.normalize("NFKC", key).casefold()
    return "".join(c for c in folded if c.isalnum())


def lookalike_field(keys: Iterable[object], missing: str) -> str | None:
    """A key among ``keys`` that looks like the missing field ``missing`` (a typo), or None.

    The rule (the same in the estimators, the JSON Lines reader and the server): unknown keys are
    ignored, as SageMaker does, *except* that a record without ``in0`` (or ``in1``) must not hold a
    key that normalises to it (case, ``_``/``-``/space and Unicode compatibility forms ignored), such
    as ``in_0`` or ``IN0``. Otherwise a typo would silently turn a pair into a single input and be
    answered in the other mode.
    """
    for key in keys:
        if key != missing and _normalized_key(key) == missing:
            return cast(str, key)  # _normalized_key matched it: a str
    return None


def check_lookalike_keys(record: Iterable[object], present: Collection[str], where: str) -> None:
    """Raise ValueError when ``record`` lacks a field of :data:`FIELDS` but holds a key that looks like it."""
    if len(present) == len(FIELDS):
        return
    for field in FIELDS:
        if field not in present:
            key = lookalike_field(record, field)
            if key is not None:
                raise ValueError(f"{where}: has the key {key!r} but no {field!r}; field names are exactly "
                                 f"'in0' and 'in1' (a misspelt key would silently change the inference mode)")


def is_dataframe_of_records(X: object) -> bool:
    columns = getattr(X, "columns", None)
    return columns is not None and hasattr(X, "iloc") and any(f in list(columns) for f in FIELDS)


def looks_like_records(X: object) -> bool:
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


def is_integer(value: object) -> bool:
    """A Python or NumPy integer, not a bool (``True`` is an ``int`` to Python, never a count or an id here)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _record_error(what: str, index: int, field: str | None, message: str) -> ValueError:
    where = f"record {index}" + (f", field {field!r}" if field else "")
    return ValueError(f"{what}: {where}: {message}")


def _is_sequence(seq: object) -> bool:
    """An ordered container of ids: lists, tuples, arrays; not strings, mappings, sets or iterators."""
    return (hasattr(seq, "__len__") and hasattr(seq, "__getitem__")
            and not isinstance(seq, (str, bytes, bytearray, Mapping)))


def _token_problem(token: object) -> str | None:
    """Why ``token`` is not a valid token id, or None."""
    if isinstance(token, (bool, np.bool_)):
        return f"expected a flat list of integer token ids, got the element {token!r} (booleans are not token ids)"
    if isinstance(token, (int, np.integer)):
        if token < 0:
            return f"token ids must be >= 0, got {short_repr(int(token))}"
        if token >= _MAX_ID:
            return f"token ids must be integers below 2**53, got {short_repr(int(token))}"
        return None
    if isinstance(token, (float, np.floating)):
        if not np.isfinite(token) or token != np.floor(token):
            return f"token ids must be integers, got {short_repr(float(token))}"
        if not 0 <= token < _MAX_ID:
            return f"token ids must be integers in [0, 2**53), got {short_repr(float(token))}"
        return None
    return (f"expected a flat list of integer token ids, got the element {short_repr(token)}"
            + (" (nested lists are not allowed)" if isinstance(token, (list, tuple)) else ""))


def _locate_bad_sequence(sequences: Iterable[Any], field: str, what: str) -> NoReturn:
    """Slow path: find the first record whose ``field`` is not a list of token ids."""
    for i, seq in enumerate(sequences):
        if not _is_sequence(seq):
            kind = " (a set has no order)" if isinstance(seq, (set, frozenset)) else ""
            raise _record_error(what, i, field, f"expected a list of integer token ids, got {short_repr(seq)}{kind}")
        for token in seq:
            problem = _token_problem(token)
            if problem is not None:
                raise _record_error(what, i, field, problem)
    # Not reached for any input the fast path refuses; kept as a ValueError so that a gap in the two
    # paths' agreement is still a clear error rather than an AssertionError.
    raise ValueError(f"{what}: field {field!r}: token ids must be flat lists of integers in [0, 2**53)")


#: Tokens converted per step: bounds the temporary Python list to a few MB whatever n is.
_CHUNK = 1 << 20


def _plain_int_tokens(sequences: Sequence[Any], total: int) -> np.ndarray | None:
    """The tokens as int64 in one C-speed pass when every one is a Python int below 2**63 (JSON's ids,
    lists of ints), else None: the chunked conversion then checks each element's type. 40% of the
    time of that conversion for pairs of 5-40 tokens. The first record is looked at first, so that
    input of another element type (numpy arrays, floats) does not pay a full scan before the chunks."""
    if not sequences or not set(map(type, sequences[0])) <= {int}:
        return None
    if not set(map(type, chain.from_iterable(sequences))) <= {int}:
        return None
    try:
        return np.fromiter(chain.from_iterable(sequences), dtype=np.int64, count=total)
    except OverflowError:  # an id of 2**63 or more: the chunked conversion names it
        return None


def _checked_tokens(sequences: Sequence[Any], total: int, field: str, what: str,
                    record_of: Callable[[int], int]) -> np.ndarray:
    """The tokens as int64, converted a chunk at a time with each element's type checked (numpy ints,
    integral floats; booleans, strings and nested lists refused, naming the record)."""
    flat = np.empty(total, dtype=np.int64)
    tokens = chain.from_iterable(sequences)
    for start in range(0, total, _CHUNK):
        try:
            # numpy infers the element type: strings, booleans or nested lists do not give a
            # numeric array, and the slow path then names the offending record.
            chunk: list[Any] | np.ndarray = list(islice(tokens, _CHUNK))
            types = set(map(type, chunk))
            # numpy reads [1, True] as [1, 1]: booleans are refused before it sees them.
            if bool in types or np.bool_ in types:
                raise TypeError
            chunk = np.asarray(chunk)
            if chunk.dtype.kind not in "iuf" or chunk.ndim != 1:
                raise TypeError
        except (TypeError, ValueError):
            _locate_bad_sequence(sequences, field, what)
            raise
        bad = (chunk >= _MAX_ID) | (chunk < -_MAX_ID)
        if chunk.dtype.kind == "f":
            bad |= ~np.isfinite(chunk) | (chunk != np.floor(chunk))
        if bad.any():
            position = int(np.argmax(bad))
            value = chunk[position].item()
            raise _record_error(what, record_of(start + position), field,
                                f"token ids must be integers below 2**53, got {short_repr(value)}")
        flat[start:start + len(chunk)] = chunk
    return flat


def ragged_from_sequences(sequences: Sequence[Any], field: str, what: str = "X") -> Ragged:
    """Validate a list of token-id lists and store it flat.

    Raises ValueError naming the record and field for: a value that is not a flat
    list of numbers, an empty sequence, a non-integral or too large id, or a negative id.
    Memory: the result (8 bytes per token) plus one chunk of :data:`_CHUNK` tokens.
    """
    n = len(sequences)
    try:
        # set(map(type, ...)) runs at C speed; the per-item check only for other container types.
        if not set(map(type, sequences)) <= {list, tuple} and not all(map(_is_sequence, sequences)):
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

    def record_of(position: int) -> int:
        return int(np.searchsorted(offsets, position, side="right") - 1)

    flat = _plain_int_tokens(sequences, int(offsets[-1]))
    if flat is None:
        flat = _checked_tokens(sequences, int(offsets[-1]), field, what, record_of)
    else:
        too_large = np.flatnonzero(flat >= _MAX_ID)
        if too_large.size:
            raise _record_error(what, record_of(int(too_large[0])), field,
                                f"token ids must be integers below 2**53, got {short_repr(int(flat[too_large[0]]))}")
    negative = np.flatnonzero(flat < 0)
    if negative.size:
        # "Negative values in data" is the phrase scikit-learn uses for this error.
        raise ValueError(
            f"Negative values in data passed to {what}: record {record_of(int(negative[0]))}, field {field!r} "
            f"has token id {int(flat[negative[0]])}; token ids must be >= 0."
        )
    return Ragged(flat, offsets)


def _plain_pair_records(X: Any) -> tuple[list[Any], list[Any]] | None:
    """``(in0 list, in1 list)`` in C-speed passes when ``X`` is a list of dicts that all hold exactly
    ``in0`` and ``in1`` (the common request: a third of the time of the per-record loop), else None."""
    if type(X) is not list or not X or set(map(type, X)) != {dict} or set(map(len, X)) != {2}:
        return None
    try:
        return [record["in0"] for record in X], [record["in1"] for record in X]
    except KeyError:  # another key in place of one: the per-record loop names it
        return None


def _records_sequences(X: Any, what: str) -> tuple[tuple[list[Any] | None, ...], list[tuple[str, ...]]]:
    """Return (in0 list or None, in1 list or None) from records or a DataFrame."""
    if is_dataframe_of_records(X):
        columns = [f for f in FIELDS if f in X.columns]
        check_lookalike_keys(list(X.columns), columns, f"{what}: the DataFrame")
        return tuple(list(X[f]) if f in columns else None for f in FIELDS), [
            tuple(f for f in FIELDS if f in columns)
        ] * len(X)
    pairs = _plain_pair_records(X)
    if pairs is not None:
        return pairs, [FIELDS] * len(pairs[0])
    in0: list[Any]
    in1: list[Any]
    present: list[tuple[str, ...]]
    in0, in1, present = [], [], []
    shapes = {(True, True): FIELDS, (True, False): ("in0",), (False, True): ("in1",), (False, False): ()}
    # One pass with plain dict operations: this loop runs once per record (524k for a 6 MB request).
    for i, record in enumerate(X):
        if type(record) is not dict and not isinstance(record, Mapping):
            raise _record_error(what, i, None, f"expected a record like {{'in0': [...], 'in1': [...]}}, "
                                               f"got {type(record).__name__}")
        has0, has1 = "in0" in record, "in1" in record
        keys = shapes[has0, has1]
        if len(record) > len(keys) and len(keys) < len(FIELDS):  # other keys beside a missing field
            check_lookalike_keys(record, keys, f"{what}: record {i}")
        present.append(keys)
        if has0:
            in0.append(record["in0"])
        if has1:
            in1.append(record["in1"])
    seqs = {"in0": in0, "in1": in1}
    return (seqs["in0"], seqs["in1"]), present


def records_to_pairs(X: Any, *, what: str = "X", single_side_ok: bool = False) -> PairData:
    """Validate record rows into :class:`PairData`.

    With ``single_side_ok`` the records may all hold only ``in0`` or all only
    ``in1`` (SageMaker's embedding mode); a mix of shapes is an error.
    """
    (in0, in1), present = _records_sequences(X, what)
    if not present:
        raise ValueError(f"{what}: no records; expected at least one record with 'in0' and/or 'in1'.")
    first = present[0]
    expected: tuple[str, ...]
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
        # a field that every record holds was collected (None only for a DataFrame without that column)
        ragged_from_sequences(cast("list[Any]", in0), "in0", what) if "in0" in expected else None,
        ragged_from_sequences(cast("list[Any]", in1), "in1", what) if "in1" in expected else None,
    )


def check_token_array(X: np.ndarray, what: str) -> np.ndarray:
    """Integrality, sign and range of an already validated numeric array; returns int64.

    The range is checked before the cast: uint64 2**63 + 5 or float 1e20 would wrap to negative ids.
    """
    if X.dtype.kind == "b":
        raise ValueError(f"{what} expects integer token ids; got a boolean array (booleans are not token ids).")
    if X.dtype.kind == "f":
        bad = X != np.floor(X)
        if bad.any():
            raise ValueError(
                f"{what} expects integer token ids; got non-integral values such as {X[bad][:3].tolist()}."
            )
    check_non_negative(X, f"{what} (token ids)")
    if X.size and X.max() >= _MAX_ID:
        row, col = np.unravel_index(int(np.argmax(X >= _MAX_ID)), X.shape)
        raise ValueError(f"{what}: record {row}, column {col}: token id {short_repr(X[row, col].item())} is not "
                         f"below 2**53; token ids must be integers in [0, 2**53).")
    return np.asarray(X, dtype=np.int64)


def array_to_pairs(X: np.ndarray) -> PairData:
    half = X.shape[1] // 2
    return PairData(Ragged.from_dense(X[:, :half]), Ragged.from_dense(X[:, half:]))


#: Largest regression target magnitude: the standardisation squares deviations, which overflows
#: float64 beyond about 1e154 (``y_scale_`` inf, every prediction inf or NaN).
MAX_TARGET = 1e150
