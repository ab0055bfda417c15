"""Connection guards for the uvicorn server: a read timeout, a connection limit and head limits.

uvicorn closes idle keep-alive connections, but not one that trickles its headers
or body a byte at a time: 300 such clients held 300 sockets (and file
descriptors) for as long as they liked. :class:`GuardedHttpToolsProtocol` gives
every request :attr:`read_timeout_s` seconds from its first byte (or from the
connection) until its body is complete, then answers 408 and closes; and it
refuses a connection beyond :attr:`max_connections` with 503 at once, before
reading anything, so the descriptors a server holds stay bounded; one client
address may hold a quarter of them (503 beyond that share). A request head
(request line and headers) larger than :data:`MAX_HEAD_BYTES` or with more than
:data:`MAX_HEADERS` headers (``--max-header-kb``, ``--max-headers``) gets 431 and a close, counted while it arrives (an
unfinished 8 MB head no longer pins memory until the read timeout); and
``Expect: 100-continue`` with a Content-Length over ``--max-payload-mb`` gets 413
from the headers, without asking for the body.

A reply the client does not read (its socket buffer full) for :attr:`write_timeout_s`
seconds is aborted, so a client that stops reading cannot pin the reply's memory and
its connection forever. On shutdown (SIGTERM), a request whose head or body is still
arriving gets 503 and a close at once (it would not be served: before, it waited for
the grace period and ended in a 500 with a CancelledError); requests already received
are answered within the grace period (``--shutdown-grace-s``).

The settings are class attributes, read from the environment at import, so that
``uvicorn --workers N`` processes (which import this class by name) get the same
values as the parent; :func:`configure` sets both.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    import asyncio

__all__ = ["configure", "protocol_class", "DEFAULT_READ_TIMEOUT_S", "DEFAULT_WRITE_TIMEOUT_S",
           "DEFAULT_MAX_CONNECTIONS", "DEFAULT_SHUTDOWN_GRACE_S"]

logger = logging.getLogger("skobject2vec.serving")

#: SageMaker gives an invocation 60 s; a request still not fully received by then will not be served.
DEFAULT_READ_TIMEOUT_S = 60.0
#: A reply whose client reads nothing for this long is aborted (SageMaker's client waits 60 s in all).
DEFAULT_WRITE_TIMEOUT_S = 60.0
#: On SIGTERM, requests already received get this long to be answered (``docker stop`` kills after 10 s).
DEFAULT_SHUTDOWN_GRACE_S = 5.0
#: Open connections per server process (each one is a file descriptor; the usual soft limit is 1024).
DEFAULT_MAX_CONNECTIONS = 512
#: A request's head (request line and headers): bytes and header count. nginx's default buffers hold
#: 8 KiB per header line and 32 KiB in all; a SageMaker invocation sends a dozen short headers.
MAX_HEAD_BYTES = 64 * 1024
MAX_HEADERS = 100
#: The body limit (``--max-payload-mb``), for answering ``Expect: 100-continue`` without reading the body.
ENV_MAX_PAYLOAD = "SKOBJECT2VEC_SERVE_MAX_PAYLOAD_BYTES"
ENV_READ_TIMEOUT = "SKOBJECT2VEC_SERVE_READ_TIMEOUT_S"
ENV_MAX_CONNECTIONS = "SKOBJECT2VEC_SERVE_MAX_CONNECTIONS"
ENV_WRITE_TIMEOUT = "SKOBJECT2VEC_SERVE_WRITE_TIMEOUT_S"
ENV_MAX_HEAD_BYTES = "SKOBJECT2VEC_SERVE_MAX_HEAD_BYTES"
ENV_MAX_HEADERS = "SKOBJECT2VEC_SERVE_MAX_HEADERS"


def _raw_response(status: int, reason: str, message: str) -> bytes:
    body = orjson.dumps({"error": {"code": status, "message": message}})
    return (b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: %d\r\n\r\n"
            % (status, reason.encode(), len(body))) + body


def configure(read_timeout_s: float, max_connections: int, max_payload_bytes: int | None = None,
              write_timeout_s: float = DEFAULT_WRITE_TIMEOUT_S, max_head_bytes: int = MAX_HEAD_BYTES,
              max_headers: int = MAX_HEADERS) -> None:
    """Set the guards for this process and for worker processes started after this call."""
    if max_payload_bytes is not None:
        os.environ[ENV_MAX_PAYLOAD] = str(int(max_payload_bytes))
    os.environ[ENV_MAX_HEAD_BYTES] = str(int(max_head_bytes))
    os.environ[ENV_MAX_HEADERS] = str(int(max_headers))
    os.environ[ENV_READ_TIMEOUT] = repr(float(read_timeout_s))
    os.environ[ENV_WRITE_TIMEOUT] = repr(float(write_timeout_s))
    os.environ[ENV_MAX_CONNECTIONS] = str(int(max_connections))
    cls = protocol_class()
    if cls is not None:
        cls.read_timeout_s, cls.max_connections = float(read_timeout_s), int(max_connections)
        cls.write_timeout_s = float(write_timeout_s)
        cls.max_head_bytes, cls.max_headers = int(max_head_bytes), int(max_headers)


def protocol_class():
    """The guarded protocol class, or None without httptools (uvicorn's default is used then)."""
    return GuardedHttpToolsProtocol


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools is part of the serve extra
    GuardedHttpToolsProtocol = None
else:
    # (mypy cannot type a class that exists only when its optional import succeeds: it saw the None above)
    class GuardedHttpToolsProtocol(HttpToolsProtocol):  # type: ignore[no-redef]
        """uvicorn's httptools protocol with a per-request read timeout and a connection limit."""

        read_timeout_s = float(os.environ.get(ENV_READ_TIMEOUT, DEFAULT_READ_TIMEOUT_S))
        write_timeout_s = float(os.environ.get(ENV_WRITE_TIMEOUT, DEFAULT_WRITE_TIMEOUT_S))
        max_connections = int(os.environ.get(ENV_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS))

        max_head_bytes = int(os.environ.get(ENV_MAX_HEAD_BYTES, MAX_HEAD_BYTES))
        max_headers = int(os.environ.get(ENV_MAX_HEADERS, MAX_HEADERS))

        #: open connections per client address in this process
        _per_client: dict = {}
        #: the pending read and write timeouts (set per connection in connection_made)
        _read_timer: asyncio.TimerHandle | None
        _write_timer: asyncio.TimerHandle | None

        def connection_made(self, transport) -> None:
            self._read_timer = self._write_timer = None
            self._receiving = False  # from a request's first byte until its body is complete
            self._head_bytes = self._headers = 0
            self._in_head = True
            self._refused = False
            peer = transport.get_extra_info("peername")
            self._client = peer[0] if isinstance(peer, (tuple, list)) and peer else None
            super().connection_made(transport)
            share = max(1, self.max_connections // 4)
            if self._client is not None:
                held = self._per_client.get(self._client, 0)
                if held >= share:
                    logger.warning("refused a connection from %s: it holds %d, a client's share is %d "
                                   "(--max-connections / 4)", self._client, held, share)
                    self._client = None  # not counted
                    transport.write(_raw_response(503, "Service Unavailable",
                                                  f"this client holds its share of {share} connections "
                                                  f"(a quarter of --max-connections); retry later"))
                    transport.close()
                    return
                self._per_client[self._client] = held + 1
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

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return  # answered and closing: the rest of the request is not parsed
            in_head = self._in_head
            super().data_received(data)
            if in_head and self._in_head and not self._refused:
                # a head still incomplete after these bytes: counted as they arrive, so that one that never
                # completes is refused before it grows (a chunk that completes it may also carry the body)
                self._head_bytes += len(data)
                if self._head_bytes > self.max_head_bytes:
                    self._refuse(431, "Request Header Fields Too Large",
                                 f"the request line and headers exceed {self.max_head_bytes} bytes")

        def on_header(self, name: bytes, value: bytes) -> None:
            self._headers += 1
            if self._headers > self.max_headers:
                self._refuse(431, "Request Header Fields Too Large", f"more than {self.max_headers} headers")
                return
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            if self._refused:
                return
            self._in_head = False
            headers = dict(self.headers)
            limit = os.environ.get(ENV_MAX_PAYLOAD)
            length = headers.get(b"content-length", b"")
            if (limit and headers.get(b"expect", b"").lower() == b"100-continue" and length.isdigit()
                    and int(length) > int(limit)):
                # answered from the headers: the client must not be asked for a body that will be refused
                self._refuse(413, "Content Too Large",
                             f"the body of {int(length)} bytes exceeds the limit of {int(limit)} bytes "
                             f"(--max-payload-mb)")
                return
            super().on_headers_complete()

        def _refuse(self, status: int, reason: str, message: str) -> None:
            self._refused = True
            self._disarm()
            if not self.transport.is_closing():
                logger.warning("refused a request: %s", message)
                self.transport.write(_raw_response(status, reason, message))
                self.transport.close()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._receiving = True
            self._arm()

        def on_message_complete(self) -> None:
            if self._refused:
                return
            self._receiving = False
            super().on_message_complete()
            self._in_head, self._head_bytes, self._headers = True, 0, 0  # the next bytes begin the next request
            self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._disarm()  # an idle keep-alive connection is uvicorn's timeout_keep_alive's to close

        def shutdown(self) -> None:
            """The server is stopping: a request still arriving is refused now (503 and a close: it
            would not be served); one received is answered, then its connection closes (uvicorn's)."""
            if self._receiving and not self._refused:
                self._refuse(503, "Service Unavailable",
                             "the server is shutting down and the request was not fully received; retry it")
                return
            super().shutdown()

        def pause_writing(self) -> None:
            super().pause_writing()
            if self._write_timer is None and self.write_timeout_s > 0:
                self._write_timer = self.loop.call_later(self.write_timeout_s, self._write_timed_out)

        def resume_writing(self) -> None:
            super().resume_writing()
            if self._write_timer is not None:
                self._write_timer.cancel()
                self._write_timer = None

        def _write_timed_out(self) -> None:
            self._write_timer = None
            if not self.transport.is_closing() or self.transport.get_write_buffer_size():
                logger.warning("aborted a reply its client did not read for %.0f s (--write-timeout-s)",
                               self.write_timeout_s)
                self.transport.abort()  # drops the unsent reply; the app's next send sees the disconnect

        def connection_lost(self, exc) -> None:
            self._disarm()
            if getattr(self, "_write_timer", None) is not None:
                self._write_timer.cancel()  # type: ignore[union-attr]  # mypy does not narrow through getattr
                self._write_timer = None
            if getattr(self, "_client", None) is not None:
                left = self._per_client.get(self._client, 1) - 1
                if left > 0:
                    self._per_client[self._client] = left
                else:
                    self._per_client.pop(self._client, None)
                self._client = None
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
