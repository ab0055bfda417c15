"""SageMaker's Object2Vec wire format: parse ``/invocations`` requests, write responses.

Nothing here touches the model. A request becomes a :class:`ParsedRequest`
(validated :class:`~skobject2vec.data.batching.PairData`, the detected mode and
the truncation lengths); outputs become bytes in the accepted format. Every
problem with a payload raises :class:`PayloadError`, whose message starts with
SageMaker's own ``"unable to evaluate payload provided"`` and then says which
record and which field is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

import numpy as np
import orjson

from ..data.batching import PairData
from ..data.records import paused_gc, records_to_pairs

__all__ = [
    "PayloadError", "ParsedRequest", "request_format", "parse_body", "response_media_type", "write_response",
    "error_body", "JSON", "JSONLINES", "SAGEMAKER_PHRASE",
]

SAGEMAKER_PHRASE = "unable to evaluate payload provided"
JSON = "application/json"
JSONLINES = "application/jsonlines"
#: Spellings of JSON Lines seen in the wild; SageMaker documents ``application/jsonlines``.
_JSONLINES_ALIASES = (JSONLINES, "application/x-jsonlines", "application/jsonl", "application/x-ndjson")
#: The documented range of each ``infer_max_seqlens`` value.
SEQLEN_RANGE = (1, 5000)


class PayloadError(ValueError):
    """A request the server cannot evaluate: an HTTP status and a message for the client."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(f"{SAGEMAKER_PHRASE}: {message}")
        self.status = status


@dataclass
class ParsedRequest:
    """A validated request.

    ``side`` is None for pair prediction, else the encoder (0 or 1) to run;
    ``max_lens`` are the truncation lengths for enc0 and enc1 (the model's, or
    the request's ``infer_max_seqlens``).
    """

    pairs: PairData
    side: int | None
    max_lens: tuple[int, int]

    @property
    def n_records(self) -> int:
        return len(self.pairs)


def error_body(message: str, status: int) -> bytes:
    """The JSON body of an error response: ``{"error": {"code": 400, "message": "..."}}``."""
    return orjson.dumps({"error": {"code": status, "message": message}})


def _split_media_type(header: str | None) -> tuple[str, dict]:
    """``"application/json; infer_max_seqlens=10,20"`` -> ("application/json", {"infer_max_seqlens": "10,20"})."""
    media, *params = (header or "").split(";")
    parsed = {}
    for param in params:
        name, sep, value = param.partition("=")
        if sep:
            parsed[name.strip().lower()] = value.strip().strip('"')
    return media.strip().lower(), parsed


def _max_lens(params: dict, default: tuple[int, int]) -> tuple[int, int]:
    text = params.get("infer_max_seqlens")
    if text is None:
        return cast("tuple[int, int]", tuple(default))
    parts = [p.strip() for p in text.split(",")]
    low, high = SEQLEN_RANGE
    # isascii: str.isdigit accepts "²" or "٣", which int() then refuses (a 500 instead of a 400).
    if len(parts) != 2 or not all(p.isascii() and p.isdigit() and low <= int(p) <= high for p in parts):
        raise PayloadError(f"content-type parameter infer_max_seqlens={text!r} must be two integers in "
                           f"[{low}, {high}] separated by a comma, e.g. infer_max_seqlens=50,50 (enc0, enc1)")
    return int(parts[0]), int(parts[1])


def _loads(data: bytes, where: str):
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"{where} is not valid JSON ({exc})") from None


def _json_instances(body: bytes) -> list:
    obj = _loads(body, "the request body")
    if isinstance(obj, list):
        raise PayloadError('the body is a bare JSON list; application/json requests must be an object '
                           '{"instances": [{"in0": [...], "in1": [...]}, ...]} (or send application/jsonlines)')
    if not isinstance(obj, dict) or "instances" not in obj:
        raise PayloadError('the body must be a JSON object with an "instances" list, e.g. '
                           '{"instances": [{"in0": [1, 2], "in1": [3]}]}; got '
                           + (f"an object with keys {sorted(obj)[:5]}" if isinstance(obj, dict)
                              else f"a JSON {type(obj).__name__}"))
    instances = obj["instances"]
    if not isinstance(instances, list):
        raise PayloadError(f'"instances" must be a list of records, got a JSON {type(instances).__name__}')
    return instances


def _jsonlines_instances(body: bytes) -> list:
    lines = body.splitlines()
    try:  # the common case in one comprehension (a 524k-line body); the loop below names a bad line
        return [orjson.loads(line) for line in lines if line and not line.isspace()]
    except orjson.JSONDecodeError:
        pass
    for number, line in enumerate(lines, start=1):
        if line and not line.isspace():
            _loads(line, f"line {number}")
    raise AssertionError("unreachable: a line failed to parse once and not again")  # pragma: no cover


def request_format(content_type: str | None, default_max_lens: tuple[int, int]) -> tuple[str, tuple[int, int]]:
    """The body format and the truncation lengths named by a ``Content-Type`` header.

    ``application/json`` (also when the header is missing, as SageMaker assumes)
    or ``application/jsonlines``, optionally with ``; infer_max_seqlens=<enc0>,<enc1>``;
    ``default_max_lens`` are the model's lengths.

    Raises
    ------
    PayloadError
        415 for another content type, 400 for a bad ``infer_max_seqlens``.
    """
    media, params = _split_media_type(content_type)
    if media in ("", JSON):
        media = JSON
    elif media in _JSONLINES_ALIASES:
        media = JSONLINES
    else:
        raise PayloadError(f"unsupported content type {media!r}; send application/json "
                           f'({{"instances": [...]}}) or application/jsonlines (one record per line)', 415)
    return media, _max_lens(params, default_max_lens)


def parse_body(body: bytes, media: str, max_lens: tuple[int, int]) -> ParsedRequest:
    """Validate the records of one ``/invocations`` body (``media`` from :func:`request_format`).

    The mode follows the records: all with ``in0`` and ``in1`` is pair prediction,
    all with only ``in0`` (or only ``in1``) is that encoder's embedding.

    Raises
    ------
    PayloadError
        400 naming the record and field for anything malformed, or for a mix of modes.
    """
    with paused_gc():  # see paused_gc: most of a large request's parse time went to the collector
        return _parse_body(body, media, max_lens)


def _parse_body(body: bytes, media: str, max_lens: tuple[int, int]) -> ParsedRequest:
    instances = _json_instances(body) if media == JSON else _jsonlines_instances(body)
    if not instances:
        raise PayloadError("no instances: the request holds no records")
    for i, record in enumerate(instances):
        if type(record) is not dict and not isinstance(record, Mapping):
            raise PayloadError(f'instances: record {i}: expected an object like {{"in0": [...], "in1": [...]}}, '
                               f"got a JSON {type(record).__name__}")
    try:
        pairs = records_to_pairs(instances, what="instances", single_side_ok=True)
    except ValueError as exc:
        raise PayloadError(str(exc)) from None
    side = None if pairs.in0 is not None and pairs.in1 is not None else (0 if pairs.in0 is not None else 1)
    return ParsedRequest(pairs, side, max_lens)


def _quality(params: dict) -> float:
    """An Accept item's q-value (RFC 9110: 0 to 1, default 1); a malformed one counts as 1."""
    try:
        q = float(params.get("q", "1"))
    except ValueError:
        return 1.0
    return min(max(q, 0.0), 1.0) if q == q else 1.0  # q == q: not NaN


def response_media_type(accept: str | None) -> str:
    """The response format for an ``Accept`` header: the acceptable format of highest q-value (on ties a
    named type before a wildcard, then the first listed; a wildcard means JSON), JSON without the header.

    Raises PayloadError (406) when the header accepts (q > 0) only formats this server cannot write.
    """
    if not accept:
        return JSON
    best, best_q = None, 0.0
    for position, item in enumerate(accept.split(",")):
        media, params = _split_media_type(item)
        q = _quality(params)
        offer = JSONLINES if media in _JSONLINES_ALIASES else JSON if media in (JSON, "*/*", "application/*") \
            else None
        if offer is None or q <= 0:
            continue
        # ties: a named type over a wildcard, then the order given
        rank = (q, media not in ("*/*", "application/*"), -position)
        if best is None or rank > best[0]:
            best = (rank, offer)
            best_q = q
    if best is None or best_q <= 0:
        raise PayloadError(f"cannot answer with Accept {accept!r}; accepted: application/json, "
                           f"application/jsonlines", 406)
    return best[1]


#: Rows serialised per piece of a response: bounds the bytes held at once (a 524k-record reply
#: is written piece by piece, never as one 160 MB string and its copies).
RESPONSE_CHUNK_ROWS = 8192


def _rows_piece(key: str, rows: np.ndarray, media_type: str) -> bytes:
    """The records of ``rows`` as ``{key: row}`` items, comma- or newline-separated, without framing.

    One ``orjson.dumps`` of the whole 2-D array (C speed) and one ``bytes.replace``: numbers never
    contain brackets, so every ``],[`` is a boundary between two rows. Calling orjson once per row
    took 17 us a row (8.9 s for 524k rows).
    """
    dumped = orjson.dumps(rows, option=orjson.OPT_SERIALIZE_NUMPY)  # b"[[a,b],[c,d]]"
    head = b'{"%s":' % key.encode()
    separator = b"]}\n" + head + b"[" if media_type == JSONLINES else b"]}," + head + b"["
    return head + dumped[1:-1].replace(b"],[", separator) + b"}"


def iter_response(key: str, rows: np.ndarray, media_type: str, chunk_rows: int = RESPONSE_CHUNK_ROWS):
    """The response body of :func:`write_response` in pieces of ``chunk_rows`` records (for streaming)."""
    rows = np.ascontiguousarray(rows, dtype=np.float64)
    if rows.ndim != 2:
        raise ValueError(f"rows must be 2-D, got shape {rows.shape}")
    if media_type != JSONLINES:
        yield b'{"predictions":['
    for start in range(0, len(rows), chunk_rows):
        piece = _rows_piece(key, rows[start:start + chunk_rows], media_type)
        if media_type == JSONLINES:
            yield piece + b"\n"
        else:
            yield (b"," + piece) if start else piece
    if media_type != JSONLINES:
        yield b"]}"


def write_response(key: str, rows: np.ndarray, media_type: str) -> bytes:
    """``{"predictions": [{key: row}, ...]}`` (JSON) or one ``{key: row}`` per line (JSON Lines).

    ``key`` is ``"scores"`` or ``"embeddings"``; ``rows`` is 2-D float64, written
    with full precision so that clients read back the in-process values (NaN and
    infinities as ``null``, as orjson writes them).
    """
    return b"".join(iter_response(key, rows, media_type))
