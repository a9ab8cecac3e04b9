"""The temporary Prefect API server of a local `sora run`, started so that it dies with the run.

Prefect starts the same server by itself when no PREFECT_API_URL is set, but as a plain child process: a
`kill -9` of `sora run` left it running. This starts it the way Prefect does (uvicorn on Prefect's app factory,
127.0.0.1, a free port) with a parent-death signal, and stops it when the run ends.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import prefect
from prefect.settings import PREFECT_API_URL, temporary_settings

from sora.pipeline.processes import dies_with_this_process

STARTUP_SECONDS = 60


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_local_prefect_api() -> str | None:
    """Start a temporary server owned by this process and point Prefect at it for the rest of the process;
    returns its API URL, or None when one is configured (PREFECT_API_URL: a `prefect server start` or Prefect
    Cloud), which is then used as it is. The server stops at exit, after Prefect has flushed its logs."""
    if PREFECT_API_URL.value():
        return None
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    cmd = [
        sys.executable, "-m", "uvicorn", "--app-dir", str(Path(prefect.__file__).parent.parent), "--factory",
        "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(port), "--log-level", "error",
        "--lifespan", "on",
    ]  # fmt: skip
    env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
    # SIGKILL: on SIGTERM uvicorn waits for its connections and Prefect's services to wind down
    server = subprocess.Popen(cmd, env=env, preexec_fn=dies_with_this_process(signal.SIGKILL))
    # Registered before Prefect registers its own exit handlers (which run first): logs are flushed to a live
    # server, then it stops.
    atexit.register(_stop, server)
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"the local Prefect API server exited with {server.returncode} while starting")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the local Prefect API server did not answer on {url} in {STARTUP_SECONDS}s")
        time.sleep(0.2)
    temporary_settings({PREFECT_API_URL: url}).__enter__()  # for the rest of this process, exit handlers included
    return url


def _stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
