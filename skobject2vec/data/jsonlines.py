"""SageMaker Object2Vec JSON Lines records: ``{"label": 1, "in0": [...], "in1": [...]}``.

Reading streams line by line (plain or gzip, from a path or a file object), so
a file is never held in memory unless the caller collects the records. Every
error names the file, the line number and the field. Unknown extra keys are
ignored, as SageMaker does.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

import numpy as np

from .records import FIELDS, MAX_TARGET, check_lookalike_keys, paused_gc, short_repr

if TYPE_CHECKING:
    from typing import TypeAlias

    #: A path, or a file object (binary or text).
    Source: TypeAlias = str | os.PathLike[str] | IO[Any]

_loads: Callable[[str | bytes], Any]
_JSONError: type[ValueError]
try:  # a fast parser when installed (the serve extra); the stdlib one otherwise
    import orjson as _orjson

    _loads = _orjson.loads
    _JSONError = _orjson.JSONDecodeError
except ImportError:  # pragma: no cover
    _orjson = None  # type: ignore[assignment]  # mypy cannot type an optional import (module or None)
    _loads = json.loads
    _JSONError = json.JSONDecodeError

__all__ = ["RecordError", "iter_records", "iter_numbered_records", "read_records", "read_numbered_records",
           "write_records", "open_text"]

#: Token ids and class labels must stay exact through float64 (orjson reads 3.0 as a float).
_MAX_ID = 2 ** 53
#: What a truncated or corrupt (gzip) file raises while it is read.
_DAMAGE = (EOFError, zlib.error, gzip.BadGzipFile, UnicodeDecodeError)


class RecordError(ValueError):
    """A malformed record: the message names file, line and field."""


_GZIP_MAGIC = b"\x1f\x8b"


def _is_binary(handle: object) -> bool:
    return not isinstance(handle, io.TextIOBase) and "b" in getattr(handle, "mode", "b")


def _starts_gzipped(handle: IO[bytes]) -> bool:
    """Look at a binary stream's first two bytes without consuming them."""
    if hasattr(handle, "peek"):
        return cast(bytes, handle.peek(2))[:2] == _GZIP_MAGIC  # a buffered reader's peek
    if getattr(handle, "seekable", lambda: False)():
        position = handle.tell()
        head = handle.read(2)
        handle.seek(position)
        return head == _GZIP_MAGIC
    return False  # an unseekable stream without peek: read as plain text


@contextlib.contextmanager
def _binary_stream(source: Source, mode: str) -> Iterator[IO[bytes]]:
    """A binary stream over a path or file object (gzip decompressed/compressed).

    Reading detects gzip by its magic bytes; writing compresses paths ending in
    ``.gz``. A caller's file object is never closed.
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if "r" in mode:
            with open(path, "rb") as probe:
                gz = probe.read(2) == _GZIP_MAGIC
        else:
            gz = path.suffix == ".gz"
        with (gzip.open(path, mode[0] + "b") if gz else open(path, mode[0] + "b")) as handle:
            yield cast(IO[bytes], handle)  # binary mode: a gzip or a plain binary file
        return
    if "r" in mode and _starts_gzipped(source):
        with gzip.GzipFile(fileobj=source, mode="rb") as handle:  # closing it leaves source open
            yield cast(IO[bytes], handle)  # a GzipFile is a binary file object
        return
    yield source


@contextlib.contextmanager
def open_text(source: Source, mode: str = "r") -> Iterator[IO[str]]:
    """Open a path or wrap a file object as UTF-8 text (gzip handled as in reading records).

    For writing, a path ending in ``.gz`` is compressed. A caller's file object is
    left open (and flushed after writing).
    """
    if not isinstance(source, (str, os.PathLike)) and not _is_binary(source):
        yield source  # already text
        return
    with _binary_stream(source, mode) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="" if "r" in mode else None)
        try:
            yield text
        finally:
            if "r" not in mode:
                text.flush()
            text.detach()  # so that dropping the wrapper does not close the stream under it


def _name(source: Source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return cast(str, getattr(source, "name", "<stream>"))


def _valid_ids(value: object) -> bool:
    """Whether ``value`` is a non-empty list of int ids in range (the common case, checked at C speed:
    no Python loop over the tokens); anything else goes through :func:`_check_ids`'s exact checks."""
    if type(value) is not list or not value:
        return False
    if len(value) == 1:
        token = value[0]
        return type(token) is int and 0 <= token < _MAX_ID  # noqa: E721 - bool is not a token id
    return set(map(type, value)) == {int} and min(value) >= 0 and max(value) < _MAX_ID


def _valid_label(value: object, label: str | None) -> bool:
    """Whether ``value`` is a label of kind ``label`` that :func:`_check_label` returns unchanged."""
    if label is None:
        return True
    if label == "classification":
        return type(value) is int and 0 <= value < _MAX_ID  # noqa: E721 - bool is not a class label
    return type(value) is float and abs(value) <= MAX_TARGET  # noqa: E721


def _check_ids(value: object, where: str, field: str) -> list[int]:
    """The ids of one field as ints (integral floats such as 3.0 accepted)."""
    if not isinstance(value, list):
        raise RecordError(f"{where}: field {field!r} must be a list of integer token ids, got {short_repr(value)}")
    if not value:
        raise RecordError(f"{where}: field {field!r} is empty; every record needs at least one token id")
    for token in value:
        if type(token) is not int:  # noqa: E721 - bool is an int subclass and is not a token id
            if isinstance(token, list):
                raise RecordError(f"{where}: field {field!r} holds a nested list; expected a flat list of ids")
            if not (isinstance(token, float) and token.is_integer()):
                raise RecordError(f"{where}: field {field!r} holds {short_repr(token)}; token ids must be integers")
        if token < 0:
            raise RecordError(f"{where}: field {field!r} holds the negative id {short_repr(token)}; token ids "
                              f"must be >= 0")
        if token >= _MAX_ID:
            raise RecordError(f"{where}: field {field!r} holds the id {short_repr(token)}; token ids must be "
                              f"below 2**53")
    if any(type(token) is not int for token in value):  # noqa: E721
        value = [int(token) for token in value]
    return value


def _check_label(value: object, where: str, label: str) -> int | float:
    if label == "classification":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                isinstance(value, float) and not value.is_integer()) or value < 0:
            raise RecordError(f"{where}: field 'label' is {short_repr(value)}; classification labels must be "
                              f"integers 0..num_classes-1")
        if value >= _MAX_ID:  # 1e300 or 2**63 would overflow the int64 label array
            raise RecordError(f"{where}: field 'label' is {short_repr(value)}; classification labels must be "
                              f"integers 0..num_classes-1 (below 2**53)")
        return int(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RecordError(f"{where}: field 'label' is {short_repr(value)}; regression labels must be numbers")
    if not abs(value) <= MAX_TARGET:  # larger targets overflow the standardisation (inf predictions)
        raise RecordError(f"{where}: field 'label' is {short_repr(value)}; regression labels must be finite with "
                          f"magnitude at most {MAX_TARGET:g}")
    return float(value)


def _numbered_lines(handle: Iterable[bytes | str], name: str) -> Iterator[tuple[int, bytes | str]]:
    """``(line number, line)``; a truncated or corrupt file is a :class:`RecordError` at the line it breaks."""
    number = 0
    lines = iter(handle)
    while True:
        try:
            line = next(lines)
        except StopIteration:
            return
        except _DAMAGE as exc:
            raise RecordError(f"{name}:{number + 1}: the file is truncated or corrupt "
                              f"({type(exc).__name__}: {str(exc)[:200]})") from None
        number += 1
        yield number, line


def iter_records(source: Source, *, label: str | None = None,
                 fields: str = "pair") -> Iterator[tuple[dict[str, list[int]], object]]:
    """Yield ``(record, label)`` for each non-blank line (see :func:`iter_numbered_records`)."""
    for _, record, value in iter_numbered_records(source, label=label, fields=fields):
        yield record, value


def iter_numbered_records(source: Source, *, label: str | None = None,
                          fields: str = "pair") -> Iterator[tuple[int, dict[str, list[int]], object]]:
    """Yield ``(line number, record, label)`` for each non-blank line.

    Parameters
    ----------
    source : path or file object
        JSON Lines, plain or gzip.
    label : {"classification", "regression", None}
        Require and check a ``label`` of that kind; ``None`` ignores labels
        (``label`` is then yielded as None).
    fields : {"pair", "any"}
        ``"pair"`` requires ``in0`` and ``in1``; ``"any"`` also accepts records
        with only one of them (inference in embedding mode).

    Raises
    ------
    RecordError
        ``file:line: ...`` for bad JSON, a missing key, a non-integer, negative or
        nested id, an empty sequence, or a label of the wrong kind.
    """
    name = _name(source)
    # Lines are parsed as bytes where possible, so that invalid UTF-8 is reported
    # with its line number like any other bad JSON.
    stream = contextlib.nullcontext(source) if not isinstance(source, (str, os.PathLike)) and not _is_binary(
        source) else _binary_stream(source, "r")
    with stream as handle:
        for number, line in _numbered_lines(handle, name):
            if not line.strip():
                continue
            try:
                obj = _loads(line)
            except (_JSONError, ValueError) as exc:
                raise RecordError(f"{name}:{number}: invalid JSON ({exc})") from None
            if (type(obj) is dict and "in0" in obj and "in1" in obj and _valid_ids(obj["in0"])
                    and _valid_ids(obj["in1"]) and _valid_label(obj.get("label"), label)):
                # the common record, valid as it is: no per-token Python loop and no message built
                yield number, {"in0": obj["in0"], "in1": obj["in1"]}, None if label is None else obj["label"]
                continue
            where = f"{name}:{number}"
            if not isinstance(obj, dict):
                raise RecordError(f"{where}: expected a JSON object like {{\"in0\": [...], \"in1\": [...]}}, "
                                  f"got {type(obj).__name__}")
            present = [f for f in FIELDS if f in obj]
            if len(present) < len(FIELDS):
                try:
                    check_lookalike_keys(obj, present, where)
                except ValueError as exc:
                    raise RecordError(str(exc)) from None
            if fields == "pair" or not present:
                for f in FIELDS:
                    if f not in obj:
                        raise RecordError(f"{where}: missing key {f!r}")
                present = list(FIELDS)
            record = {}
            for f in present:
                record[f] = _check_ids(obj[f], where, f)
            value = None
            if label is not None:
                if "label" not in obj:
                    raise RecordError(f"{where}: missing key 'label'")
                value = _check_label(obj["label"], where, label)
            yield number, record, value


def read_records(source: Source, *, label: str | None = None,
                 fields: str = "pair") -> tuple[list[dict[str, list[int]]], np.ndarray | None]:
    """Read a whole file: ``(records, labels)``, labels an array or None."""
    records, labels, _ = read_numbered_records(source, label=label, fields=fields)
    return records, labels


def read_numbered_records(source: Source, *, label: str | None = None, fields: str = "pair"
                          ) -> tuple[list[dict[str, list[int]]], np.ndarray | None, list[int]]:
    """Read a whole file: ``(records, labels, line numbers)``, labels an array or None."""
    records: list[dict[str, list[int]]]
    labels: list[object]
    lines: list[int]
    records, labels, lines = [], [], []
    with paused_gc():  # a million small containers: see paused_gc
        for line, record, value in iter_numbered_records(source, label=label, fields=fields):
            lines.append(line)
            records.append(record)
            labels.append(value)
    if label is None:
        return records, None, lines
    return records, np.asarray(labels, dtype=np.int64 if label == "classification" else np.float64), lines


def _default(obj: object) -> object:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def dumps(obj: object) -> str:
    """One compact JSON line (numpy scalars and arrays allowed)."""
    if _orjson is not None:
        return _orjson.dumps(obj, default=_default, option=_orjson.OPT_SERIALIZE_NUMPY).decode()
    return json.dumps(obj, default=_default, separators=(",", ":"))


def write_records(records: Iterable[dict[str, Any]], dest: Source, labels: Iterable[object] | None = None) -> int:
    """Write records (optionally with labels) as JSON Lines; returns the count.

    ``dest`` is a path (``.gz`` compresses) or a text file object.
    """
    count = 0
    labels = iter(labels) if labels is not None else None
    with open_text(dest, "w") as handle:
        for record in records:
            out = {k: (np.asarray(v).tolist() if k in FIELDS else v) for k, v in record.items()}
            if labels is not None:
                out = {"label": next(labels), **out}
            handle.write(dumps(out) + "\n")
            count += 1
    return count
