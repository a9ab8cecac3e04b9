"""The temporary Prefect API server of a local `sora run`, started so that it dies with the run.

Prefect starts the same server by itself when no API URL is configured, but as a plain child process: a
`kill -9` of `sora run` left it running. This starts it the way Prefect does (uvicorn on Prefect's app factory,
127.0.0.1, a free port) with a parent-death signal, and points Prefect at it through PREFECT_API_URL. It must
run before Prefect is imported: Prefect reads its settings once, at import, and its background log and event
workers see only those.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import httpx

from sora.pipeline.processes import dies_with_this_process, stop

STARTUP_SECONDS = 60


def configured_api_url() -> str | None:
    """PREFECT_API_URL from the environment or the active Prefect profile (read as TOML, without importing
    Prefect), or None."""
    if url := os.environ.get("PREFECT_API_URL"):
        return url
    home = Path(os.environ.get("PREFECT_HOME", Path.home() / ".prefect")).expanduser()
    try:
        profiles = tomllib.loads((home / "profiles.toml").read_text(encoding="utf-8"))
    except (FileNotFoundError, tomllib.TOMLDecodeError):
        return None
    active = os.environ.get("PREFECT_PROFILE") or profiles.get("active", "ephemeral")
    return (profiles.get("profiles", {}).get(active) or {}).get("PREFECT_API_URL") or None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_local_prefect_api() -> str | None:
    """Start a temporary server owned by this process and export its PREFECT_API_URL; returns the URL, or None
    when an API is configured (a `prefect server start`, Prefect Cloud), which is then used as it is. The
    server stops when this process exits, and is killed if this process is."""
    if "prefect" in sys.modules:
        raise RuntimeError("start_local_prefect_api() must run before Prefect is imported")
    if configured_api_url():
        return None
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    app_dir = str(Path(importlib.util.find_spec("prefect").origin).parents[1])
    cmd = [
        sys.executable, "-m", "uvicorn", "--app-dir", app_dir, "--factory", "prefect.server.api.server:create_app",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "error", "--lifespan", "on",
    ]  # fmt: skip
    env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
    # SIGKILL: on SIGTERM uvicorn waits for its connections and Prefect's services to wind down
    server = subprocess.Popen(cmd, env=env, preexec_fn=dies_with_this_process(signal.SIGKILL))
    # Registered before Prefect registers its own exit handlers (which therefore run first): its logs are
    # flushed to a live server, then the server stops.
    atexit.register(stop, server)
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
    os.environ["PREFECT_API_URL"] = url
    return url
