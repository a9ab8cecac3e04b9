"""Child processes that die with their parent, so a `kill -9` of `sora run` strands no dvc, stage or server.

Linux's parent-death signal (prctl PR_SET_PDEATHSIG) is the kernel's own mechanism for this: the child gets
the signal when the thread that started it exits, however it exits. Elsewhere it is a no-op.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from contextlib import suppress

PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM, parent: int | None = None) -> None:
    """Ask the kernel to send `sig` to this process when its parent dies. `parent`: the pid it must still
    have (a parent that died before the call would otherwise go unnoticed: the process was reparented)."""
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if parent is not None and os.getppid() != parent:
        os.kill(os.getpid(), sig)


def dies_with_this_process(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A Popen `preexec_fn`: the child gets `sig` when the calling process dies."""
    parent = os.getpid()
    return lambda: die_with_parent(sig, parent)


def stop(proc: subprocess.Popen, grace_seconds: float = 10, group: bool = False) -> None:
    """SIGTERM (to its whole process group with `group`), then SIGKILL whatever is left after the grace."""
    for sig, wait in ((signal.SIGTERM, grace_seconds), (signal.SIGKILL, None)):
        with suppress(ProcessLookupError):
            if group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue
