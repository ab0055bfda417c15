"""HTTP endpoint speaking SageMaker's Object2Vec inference protocol.

``skobject2vec serve --model-dir DIR`` (or :func:`serve`) runs it with uvicorn;
:func:`create_app` returns the ASGI application for other servers or tests.
Needs the ``serve`` extra: ``pip install skobject2vec[serve]``.
"""

from .app import DEFAULT_MAX_PAYLOAD_BYTES, create_app, serve

__all__ = ["create_app", "serve", "DEFAULT_MAX_PAYLOAD_BYTES"]
