"""This process's identity, and what /proc shows of another process: the I/O around domain/liveness.py."""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path

from batchgate.domain.liveness import ProcessIdentity, ProcessState, host_key, parse_stat, worker_id

PROC = Path("/proc")
UNKNOWN = ProcessState("?", None)  # a process that exists but cannot be read


def this_process() -> ProcessIdentity | None:
    """Who we are, or None where /proc cannot tell (not Linux, or a /proc of another pid namespace)."""
    try:
        if os.readlink(PROC / "self") != str(os.getpid()):
            return None  # this /proc shows another pid namespace: its pids are not ours to judge
        boot_id = (PROC / "sys/kernel/random/boot_id").read_text()
        namespace = os.stat(PROC / "self/ns/pid").st_ino
        state = process_state(os.getpid())
    except OSError:
        return None
    if state is None or state.start_ticks is None:
        return None
    return ProcessIdentity(socket.gethostname(), os.getpid(), state.start_ticks, host_key(boot_id, namespace))


def process_state(pid: int) -> ProcessState | None:
    """What /proc shows at `pid`; None only if no process has it.

    A process /proc hides (hidepid, another user) is reported as alive in an unknown state.
    """
    try:
        return parse_stat((PROC / str(pid) / "stat").read_text(errors="replace")) or UNKNOWN
    except OSError:
        pass
    try:
        os.kill(pid, 0)  # signal 0: nothing is sent, only whether the pid exists is checked
    except ProcessLookupError:
        return None
    except OSError:
        pass  # EPERM: it exists, under another user
    return UNKNOWN


def new_worker_id() -> str:
    return worker_id(secrets.token_hex(3), socket.gethostname(), os.getpid(), this_process())
