"""The ASGI application (Starlette) and the uvicorn entry point.

Routes follow SageMaker's container contract: ``GET /ping`` answers 200 once the
model is loaded, ``POST /invocations`` predicts, and ``GET /execution-parameters``
tells batch transform the payload limit. The model is loaded with
:func:`skobject2vec.load` (safetensors and JSON; nothing is unpickled).
"""

from __future__ import annotations

import logging
import math
import os
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ..data.records import is_integer
from ..io.artifact import load, read_config
from . import guard
from .batcher import MicroBatcher
from .guard import DEFAULT_MAX_CONNECTIONS, DEFAULT_READ_TIMEOUT_S, DEFAULT_SHUTDOWN_GRACE_S, DEFAULT_WRITE_TIMEOUT_S
from .protocol import (
    JSON,
    PayloadError,
    error_body,
    iter_response,
    parse_body,
    request_format,
    response_media_type,
    write_response,
)
from .runner import ModelRunner, preferred_mode_from_env

__all__ = ["create_app", "app_from_env", "serve", "default_model_dir", "check_serve_options",
           "DEFAULT_MAX_PAYLOAD_BYTES", "DEFAULT_MAX_REPLY_VALUES", "DEFAULT_READ_TIMEOUT_S",
           "DEFAULT_MAX_CONNECTIONS"]

logger = logging.getLogger("skobject2vec.serving")

#: SageMaker's limit on a real-time request body: 6 MB.
DEFAULT_MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
#: GIL switch interval of a server process. The event loop parses JSON in Python while the inference
#: thread runs torch ops that release the GIL between ops; with Python's default 5 ms the inference
#: thread can wait that long for the GIL at every op boundary while requests are parsed (a convoy
#: that made 16 concurrent 100-record requests slower than one at a time).
SWITCH_INTERVAL_S = 0.0005
_ENV_MODEL_DIR = "SKOBJECT2VEC_SERVE_MODEL_DIR"
_ENV_MAX_PAYLOAD = "SKOBJECT2VEC_SERVE_MAX_PAYLOAD_BYTES"
_ENV_MAX_REPLY = "SKOBJECT2VEC_SERVE_MAX_REPLY_VALUES"
#: Numbers (records x scores or embedding width) one response may hold. A 6 MB body holds up to
#: 524k records; with 4096-wide embeddings their reply would be 17 GB of float64 (and 40 GB of JSON).
#: 2**25 values are 256 MB of float64 at most; larger requests get 413 and should be split.
DEFAULT_MAX_REPLY_VALUES = 2 ** 25
#: Bodies up to this size are parsed on the event loop (well under a millisecond); larger ones on a
#: worker thread, so that /ping and other requests are answered while a 6 MB body is parsed.
INLINE_PARSE_BYTES = 64 * 1024
#: Replies up to this many numbers are written in one piece on the event loop; larger ones are
#: streamed, each piece serialised on a worker thread (bounded memory, the loop stays free).
INLINE_REPLY_VALUES = 64 * 1024
#: An oversized body is read (and discarded) up to this many bytes before the 413, so that an
#: ordinary client, which sends the whole body before reading the answer, gets the 413 and not a
#: "connection reset by peer". A still larger body is answered at once and the connection closed.
DRAIN_LIMIT_BYTES = 64 * 1024 * 1024
_CLOSE = {"connection": "close"}


def default_model_dir() -> str:
    """SageMaker's model folder: ``$SM_MODEL_DIR``, else ``/opt/ml/model``."""
    return os.environ.get("SM_MODEL_DIR", "/opt/ml/model")


def _json_response(payload: bytes, status: int = 200, media_type: str = JSON) -> Response:
    return Response(payload, status_code=status, media_type=media_type)


async def _drain(stream, received: int, declared: int | None) -> None:
    """Read and drop the rest of an oversized body, up to :data:`DRAIN_LIMIT_BYTES` in all."""
    if declared is not None and declared > DRAIN_LIMIT_BYTES:
        return
    async for chunk in stream:
        received += len(chunk)
        if received > DRAIN_LIMIT_BYTES:
            return


def _declared_length(request: Request) -> int | None:
    declared = request.headers.get("content-length", "").strip()
    # isascii: "²".isdigit() is True, and int("²") raises (a 500 instead of a 4xx).
    return int(declared) if declared.isascii() and declared.isdigit() else None


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, or 413 once it is known to exceed ``limit`` bytes (after draining it)."""
    declared = _declared_length(request)
    stream = request.stream()
    if declared is not None and declared > limit:
        await _drain(stream, 0, declared)
        raise PayloadError(f"the body has {declared} bytes, more than the {limit}-byte limit", 413)
    chunks, size = [], 0
    async for chunk in stream:
        size += len(chunk)
        if size > limit:
            await _drain(stream, size, declared)
            raise PayloadError(f"the body is larger than the {limit}-byte limit", 413)
        chunks.append(chunk)
    return b"".join(chunks)


def check_serve_options(*, port: int | None = None, workers: int | None = None, max_payload_bytes=None,
                        max_reply_values=None, read_timeout_s=None, max_connections=None, write_timeout_s=None,
                        shutdown_grace_s=None, max_head_bytes=None, max_headers=None) -> None:
    """Raise ValueError naming the option for a value the server cannot run with.

    ``--port 99999`` used to be logged as given while the kernel bound another port, and
    ``--max-payload-mb inf`` ended in a traceback.
    """
    def integer(name, value, low, high=None):
        if not is_integer(value) or value < low or (high and value > high):
            bound = f"in [{low}, {high}]" if high else f">= {low}"
            raise ValueError(f"{name} must be an integer {bound}, got {value!r}")

    for name, value, low, high in (("port", port, 1, 65535), ("workers", workers, 1, None),
                                   ("max_payload_bytes", max_payload_bytes, 1, None),
                                   ("max_reply_values", max_reply_values, 1, None),
                                   ("max_connections", max_connections, 1, None),
                                   ("max_head_bytes", max_head_bytes, 256, None),
                                   ("max_headers", max_headers, 1, None)):
        if value is not None:
            integer(name, value, low, high)
    for name, value in (("read_timeout_s", read_timeout_s), ("write_timeout_s", write_timeout_s),
                        ("shutdown_grace_s", shutdown_grace_s)):
        if value is not None and not (isinstance(value, (int, float)) and not isinstance(value, bool)
                                      and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite number of seconds > 0, got {value!r}")


def create_app(model_dir=None, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES, *,
               preferred_mode: str | None = None, batch_window_s: float = 0.002,
               max_batch_records: int = 2048, max_reply_values: int = DEFAULT_MAX_REPLY_VALUES) -> Starlette:
    """Load the model in ``model_dir`` and build the endpoint application.

    Parameters
    ----------
    model_dir : str or Path, optional
        A folder written by ``estimator.save``; default ``$SM_MODEL_DIR`` or ``/opt/ml/model``.
    max_payload_bytes : int, default=6 MiB
        Larger request bodies get 413.
    preferred_mode : {"classification", "embedding"}, optional
        Default: ``$INFERENCE_PREFERRED_MODE`` (see :class:`~skobject2vec.serving.runner.ModelRunner`).
    batch_window_s : float, default=0.002
        How long a forward pass waits for requests still being received.
    max_batch_records : int, default=2048
        Records gathered from concurrent requests into one forward pass.
    max_reply_values : int, default=2**25
        Requests whose reply would hold more numbers (records x output width) get 413.

    Returns
    -------
    app : starlette.applications.Starlette
    """

    check_serve_options(max_payload_bytes=max_payload_bytes, max_reply_values=max_reply_values)
    model_dir = Path(model_dir if model_dir is not None else default_model_dir())
    if preferred_mode is None:
        preferred_mode = preferred_mode_from_env()
    model = load(model_dir)
    if hasattr(model, "steps"):  # a saved Pipeline(TextPairTokenizer, ...): the protocol carries token ids
        logger.info("the artifact holds a Pipeline; the endpoint serves its final estimator on token ids")
        model = model.steps[-1][1]
    runner = ModelRunner(model, preferred_mode=preferred_mode)
    runner.warm_up()
    batcher = MicroBatcher(runner.run, max_records=max_batch_records, window_s=batch_window_s)
    logger.info("loaded %s from %s on %s", type(runner.estimator).__name__, model_dir, runner.device)

    async def ping(request: Request) -> Response:
        return _json_response(b'{"status":"healthy"}')

    async def execution_parameters(request: Request) -> Response:
        # Batch transform asks for this; JSON Lines splits cleanly into records.
        return _json_response(
            b'{"MaxConcurrentTransforms":%d,"BatchStrategy":"MULTI_RECORD","MaxPayloadInMB":%d}'
            % (max(os.cpu_count() or 1, 1), max(max_payload_bytes // (1024 * 1024), 1)))

    def _error(exc: PayloadError) -> Response:
        headers = _CLOSE if exc.status == 413 else None  # the body may not have been read to its end
        return Response(error_body(str(exc), exc.status), status_code=exc.status, media_type=JSON,
                        headers=headers)

    async def invocations(request: Request) -> Response:
        try:
            accept = response_media_type(request.headers.get("accept"))
            media, max_lens = request_format(request.headers.get("content-type"), runner.max_lens)
            with batcher.receiving():
                body = await _read_body(request, max_payload_bytes)
                if len(body) <= INLINE_PARSE_BYTES:
                    parsed = parse_body(body, media, max_lens)
                else:
                    parsed = await run_in_threadpool(parse_body, body, media, max_lens)
                del body
            n_values = parsed.n_records * runner.output_width(parsed.side)
            if n_values > max_reply_values:
                raise PayloadError(f"the reply would hold {parsed.n_records} records x "
                                   f"{runner.output_width(parsed.side)} numbers, more than the server's limit of "
                                   f"{max_reply_values}; split the request", 413)
        except PayloadError as exc:
            return _error(exc)
        except ClientDisconnect:
            return Response(status_code=499)
        try:
            rows = await batcher.submit(parsed)
        except Exception as exc:  # a server fault (logged by the batcher), never a payload problem
            return _json_response(error_body(f"internal error during inference: {type(exc).__name__}", 500), 500)
        key = "scores" if parsed.side is None else "embeddings"
        if n_values <= INLINE_REPLY_VALUES:
            return _json_response(write_response(key, rows, accept), media_type=accept)
        # A sync iterator: Starlette runs each next() on a worker thread.
        return StreamingResponse(iter_response(key, rows, accept), media_type=accept)

    @asynccontextmanager
    async def lifespan(app):
        batcher.start()
        yield
        await batcher.stop()

    app = Starlette(routes=[
        Route("/ping", ping, methods=["GET"]),
        Route("/invocations", invocations, methods=["POST"]),
        Route("/execution-parameters", execution_parameters, methods=["GET"]),
    ], lifespan=lifespan)
    app.state.runner = runner
    app.state.batcher = batcher
    return app


def app_from_env() -> Starlette:
    """uvicorn factory for ``--workers N``: every worker process loads the model itself."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    return create_app(os.environ[_ENV_MODEL_DIR], int(os.environ[_ENV_MAX_PAYLOAD]),
                      max_reply_values=int(os.environ[_ENV_MAX_REPLY]))


def serve(model_dir=None, host: str = "127.0.0.1", port: int = 8080, workers: int = 1,
          max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES, *, read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
          max_connections: int = DEFAULT_MAX_CONNECTIONS,
          max_reply_values: int = DEFAULT_MAX_REPLY_VALUES, write_timeout_s: float = DEFAULT_WRITE_TIMEOUT_S,
          shutdown_grace_s: float = DEFAULT_SHUTDOWN_GRACE_S, max_head_bytes: int = guard.MAX_HEAD_BYTES,
          max_headers: int = guard.MAX_HEADERS) -> None:
    """Run the endpoint with uvicorn until interrupted (blocks).

    Parameters
    ----------
    model_dir : str or Path, optional
        Default ``$SM_MODEL_DIR`` or ``/opt/ml/model``.
    host : str, default="127.0.0.1"
        Use ``0.0.0.0`` inside a container so that SageMaker can reach it.
    port : int, default=8080
        SageMaker's port.
    workers : int, default=1
        Server processes, each with its own copy of the model and its own batcher.
    max_payload_bytes : int, default=6 MiB
    read_timeout_s : float, default=60
        A request not fully received this long after its first byte gets 408 and is closed
        (SageMaker's invocation timeout is 60 s).
    max_connections : int, default=512
        Open connections per process; more are answered 503 and closed at once.
    max_reply_values : int, default=2**25
        Numbers one reply may hold; larger requests get 413.
    write_timeout_s : float, default=60
        A reply its client does not read for this long is aborted (its connection closed).
    shutdown_grace_s : float, default=5
        On SIGTERM: requests already received get this long to be answered; requests still
        arriving get 503 and a close at once.
    max_head_bytes : int, default=65536
        Bytes of a request's line and headers; a larger head gets 431 and a close.
    max_headers : int, default=100
        Headers per request; more get 431 and a close.

    Raises
    ------
    ValueError
        For an option out of range, naming it (before anything is loaded or bound).
    """
    import uvicorn


    check_serve_options(port=port, workers=workers, max_payload_bytes=max_payload_bytes,
                        max_reply_values=max_reply_values, read_timeout_s=read_timeout_s,
                        max_connections=max_connections, write_timeout_s=write_timeout_s,
                        shutdown_grace_s=shutdown_grace_s, max_head_bytes=max_head_bytes, max_headers=max_headers)
    model_dir = Path(model_dir if model_dir is not None else default_model_dir())
    read_config(model_dir)  # a wrong folder fails here, with a clear message, before any worker starts
    preferred_mode_from_env()  # and so does a bad INFERENCE_PREFERRED_MODE
    guard.configure(read_timeout_s, max_connections, max_payload_bytes, write_timeout_s, max_head_bytes, max_headers)
    options: dict[str, Any] = dict(host=host, port=port, access_log=False, log_level="info",
                   timeout_graceful_shutdown=shutdown_grace_s)
    if guard.protocol_class() is not None:
        options["http"] = "skobject2vec.serving.guard:GuardedHttpToolsProtocol"
    else:  # pragma: no cover
        logger.warning("httptools is not installed: no read timeout or connection limit "
                       "(pip install 'skobject2vec[serve]')")
    if workers == 1:
        app = create_app(model_dir, max_payload_bytes, max_reply_values=max_reply_values)
        sys.setswitchinterval(SWITCH_INTERVAL_S)  # this process is the server now: see SWITCH_INTERVAL_S
        uvicorn.run(app, **options)
        return
    import torch

    os.environ[_ENV_MODEL_DIR] = str(model_dir.resolve())
    os.environ[_ENV_MAX_PAYLOAD] = str(int(max_payload_bytes))
    os.environ[_ENV_MAX_REPLY] = str(int(max_reply_values))
    # Each worker runs its own forward passes: share the cores instead of oversubscribing them.
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, torch.get_num_threads() // workers)))
    uvicorn.run("skobject2vec.serving.app:app_from_env", factory=True, workers=workers, **options)
