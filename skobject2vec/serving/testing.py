"""Run the real server in a subprocess on a free loopback port (tests, benchmarks, examples).

``with running_server(model_dir) as url: ...`` starts ``python -m skobject2vec
serve``, waits until ``/ping`` answers, and stops the process on exit, whatever
happened inside the block.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

__all__ = ["free_port", "running_server", "running_server_process", "ServerFailed"]

LOOPBACK = "127.0.0.1"


class ServerFailed(RuntimeError):
    """The server process exited, or never answered /ping; the message holds its output."""


def free_port() -> int:
    """A TCP port that is free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _read(log) -> str:
    log.seek(0)
    return log.read().decode(errors="replace")[-5000:]


@contextlib.contextmanager
def running_server(model_dir, *extra_args: str, env: dict | None = None,
                   startup_timeout: float = 60.0, log_path=None) -> Iterator[str]:
    """Serve ``model_dir`` on ``127.0.0.1:<free port>``; yields the base URL.

    See :func:`running_server_process` (which also yields the process) for the parameters.
    """
    with running_server_process(model_dir, *extra_args, env=env, startup_timeout=startup_timeout,
                                log_path=log_path) as (url, _):
        yield url


@contextlib.contextmanager
def running_server_process(model_dir, *extra_args: str, env: dict | None = None,
                           startup_timeout: float = 60.0, log_path=None):
    """Serve ``model_dir`` on ``127.0.0.1:<free port>``; yields ``(base URL, subprocess.Popen)``.

    Parameters
    ----------
    model_dir : str or Path
    *extra_args : str
        More ``skobject2vec serve`` options, e.g. ``"--max-payload-mb", "1"``.
    env : dict, optional
        Extra environment variables for the server process.
    startup_timeout : float
        Seconds to wait for ``/ping``.
    log_path : str or Path, optional
        Write the server's output to this file (e.g. to look for tracebacks afterwards).
    """
    import httpx

    port = free_port()
    command = [sys.executable, "-m", "skobject2vec", "serve", "--model-dir", str(model_dir),
               "--host", LOOPBACK, "--port", str(port), *extra_args]
    url = f"http://{LOOPBACK}:{port}"
    # The server's output goes to a file, not a pipe that nobody drains and that could fill up.
    opened = open(log_path, "w+b") if log_path is not None else tempfile.TemporaryFile()
    with opened as log:
        proc = subprocess.Popen(command, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + startup_timeout
            while True:
                if proc.poll() is not None:
                    raise ServerFailed(f"server exited with code {proc.returncode}:\n{_read(log)}")
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{url}/ping", timeout=1.0).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    _stop(proc)
                    raise ServerFailed(f"no answer on {url}/ping within {startup_timeout:.0f} s:\n{_read(log)}")
                time.sleep(0.1)
            yield url, proc
        finally:
            _stop(proc)
