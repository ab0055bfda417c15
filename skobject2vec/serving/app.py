"""The ASGI application (Starlette) and the uvicorn entry point.

Routes follow SageMaker's container contract: ``GET /ping`` answers 200 once the
model is loaded, ``POST /invocations`` predicts, and ``GET /execution-parameters``
tells batch transform the payload limit. The model is loaded with
:func:`skobject2vec.load` (safetensors and JSON; nothing is unpickled).
"""

from __future__ import annotations

import logging
import os
import sys
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from .batcher import MicroBatcher
from .protocol import (JSON, PayloadError, error_body, parse_body, request_format, response_media_type,
                       write_response)
from .runner import ModelRunner, preferred_mode_from_env

__all__ = ["create_app", "app_from_env", "serve", "default_model_dir", "DEFAULT_MAX_PAYLOAD_BYTES"]

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


def default_model_dir() -> str:
    """SageMaker's model folder: ``$SM_MODEL_DIR``, else ``/opt/ml/model``."""
    return os.environ.get("SM_MODEL_DIR", "/opt/ml/model")


def _json_response(payload: bytes, status: int = 200, media_type: str = JSON) -> Response:
    return Response(payload, status_code=status, media_type=media_type)


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, or 413 as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadError(f"the body has {int(declared)} bytes, more than the {limit}-byte limit", 413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadError(f"the body is larger than the {limit}-byte limit", 413)
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(model_dir=None, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES, *,
               preferred_mode: str | None = None, batch_window_s: float = 0.002,
               max_batch_records: int = 2048) -> Starlette:
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

    Returns
    -------
    app : starlette.applications.Starlette
    """
    from .. import load

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

    async def invocations(request: Request) -> Response:
        try:
            accept = response_media_type(request.headers.get("accept"))
            media, max_lens = request_format(request.headers.get("content-type"), runner.max_lens)
            with batcher.receiving():
                body = await _read_body(request, max_payload_bytes)
                parsed = parse_body(body, media, max_lens)
        except PayloadError as exc:
            return _json_response(error_body(str(exc), exc.status), exc.status)
        except ClientDisconnect:
            return Response(status_code=499)
        try:
            rows = await batcher.submit(parsed)
        except Exception as exc:  # a server fault (logged by the batcher), never a payload problem
            return _json_response(error_body(f"internal error during inference: {type(exc).__name__}", 500), 500)
        key = "scores" if parsed.side is None else "embeddings"
        return _json_response(write_response(key, rows, accept), media_type=accept)

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
    return create_app(os.environ[_ENV_MODEL_DIR], int(os.environ[_ENV_MAX_PAYLOAD]))


def serve(model_dir=None, host: str = "127.0.0.1", port: int = 8080, workers: int = 1,
          max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> None:
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
    """
    import uvicorn

    from ..persistence import read_config

    model_dir = Path(model_dir if model_dir is not None else default_model_dir())
    read_config(model_dir)  # a wrong folder fails here, with a clear message, before any worker starts
    preferred_mode_from_env()  # and so does a bad INFERENCE_PREFERRED_MODE
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    options = dict(host=host, port=port, access_log=False, log_level="info", timeout_graceful_shutdown=5)
    if workers == 1:
        app = create_app(model_dir, max_payload_bytes)
        sys.setswitchinterval(SWITCH_INTERVAL_S)  # this process is the server now: see SWITCH_INTERVAL_S
        uvicorn.run(app, **options)
        return
    import torch

    os.environ[_ENV_MODEL_DIR] = str(model_dir.resolve())
    os.environ[_ENV_MAX_PAYLOAD] = str(int(max_payload_bytes))
    # Each worker runs its own forward passes: share the cores instead of oversubscribing them.
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, torch.get_num_threads() // workers)))
    uvicorn.run("skobject2vec.serving.app:app_from_env", factory=True, workers=workers, **options)
