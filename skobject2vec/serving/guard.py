"""Connection guards for the uvicorn server: a read timeout and a connection limit.

uvicorn closes idle keep-alive connections, but not one that trickles its headers
or body a byte at a time: 300 such clients held 300 sockets (and file
descriptors) for as long as they liked. :class:`GuardedHttpToolsProtocol` gives
every request :attr:`read_timeout_s` seconds from its first byte (or from the
connection) until its body is complete, then answers 408 and closes; and it
refuses a connection beyond :attr:`max_connections` with 503 at once, before
reading anything, so the descriptors a server holds stay bounded.

The settings are class attributes, read from the environment at import, so that
``uvicorn --workers N`` processes (which import this class by name) get the same
values as the parent; :func:`configure` sets both.
"""

from __future__ import annotations

import logging
import os

import orjson

__all__ = ["configure", "protocol_class", "DEFAULT_READ_TIMEOUT_S", "DEFAULT_MAX_CONNECTIONS"]

logger = logging.getLogger("skobject2vec.serving")

#: SageMaker gives an invocation 60 s; a request still not fully received by then will not be served.
DEFAULT_READ_TIMEOUT_S = 60.0
#: Open connections per server process (each one is a file descriptor; the usual soft limit is 1024).
DEFAULT_MAX_CONNECTIONS = 512
ENV_READ_TIMEOUT = "SKOBJECT2VEC_SERVE_READ_TIMEOUT_S"
ENV_MAX_CONNECTIONS = "SKOBJECT2VEC_SERVE_MAX_CONNECTIONS"


def _raw_response(status: int, reason: str, message: str) -> bytes:
    body = orjson.dumps({"error": {"code": status, "message": message}})
    return (b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: %d\r\n\r\n"
            % (status, reason.encode(), len(body))) + body


def configure(read_timeout_s: float, max_connections: int) -> None:
    """Set the guards for this process and for worker processes started after this call."""
    os.environ[ENV_READ_TIMEOUT] = repr(float(read_timeout_s))
    os.environ[ENV_MAX_CONNECTIONS] = str(int(max_connections))
    cls = protocol_class()
    if cls is not None:
        cls.read_timeout_s, cls.max_connections = float(read_timeout_s), int(max_connections)


def protocol_class():
    """The guarded protocol class, or None without httptools (uvicorn's default is used then)."""
    return GuardedHttpToolsProtocol


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools is part of the serve extra
    GuardedHttpToolsProtocol = None
else:
    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol with a per-request read timeout and a connection limit."""

        read_timeout_s = float(os.environ.get(ENV_READ_TIMEOUT, DEFAULT_READ_TIMEOUT_S))
        max_connections = int(os.environ.get(ENV_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS))

        def connection_made(self, transport) -> None:
            self._read_timer = None
            super().connection_made(transport)
            if len(self.connections) > self.max_connections:
                logger.warning("refused a connection: %d open, the limit is %d (--max-connections)",
                               len(self.connections) - 1, self.max_connections)
                transport.write(_raw_response(503, "Service Unavailable",
                                              f"the server holds its limit of {self.max_connections} connections; "
                                              f"retry later"))
                transport.close()
                return
            self._arm()  # a connection that never sends a byte is also closed after the timeout

        def _arm(self) -> None:
            if self._read_timer is None:
                self._read_timer = self.loop.call_later(self.read_timeout_s, self._read_timed_out)

        def _disarm(self) -> None:
            if self._read_timer is not None:
                self._read_timer.cancel()
                self._read_timer = None

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._disarm()  # an idle keep-alive connection is uvicorn's timeout_keep_alive's to close

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _read_timed_out(self) -> None:
            self._read_timer = None
            if self.transport.is_closing():
                return
            cycle = self.cycle
            if cycle is None or not cycle.response_started:
                logger.warning("closed a connection whose request was not received within %.0f s",
                               self.read_timeout_s)
                self.transport.write(_raw_response(
                    408, "Request Timeout",
                    f"the request was not received within {self.read_timeout_s:g} s (--read-timeout-s)"))
            self.transport.close()
