"""Whether the process behind a lease is provably dead: worker ids, /proc stat lines, and the decision.

A worker id names its process: `hostname:pid:token:start:host`, where `start` is the process's
start time (clock ticks after boot, field 22 of /proc/PID/stat) and `host` a short digest of the
boot id and the pid namespace. Two processes that see each other's pids under the same /proc
share `host`; containers on other machines (another boot id) or in other pid namespaces do not,
even under one hostname. The start time tells a reused pid from the process that had it.

Pure: the reading of /proc lives in worker/identity.py.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

# A zombie has exited (it only awaits its parent's wait()); X is the moment of its removal.
_EXITED_STATES = frozenset({"Z", "X"})


@dataclass(frozen=True, slots=True)
class ProcessIdentity:
    hostname: str
    pid: int
    start_ticks: int
    host_key: str  # digest of boot id and pid namespace: who can see this pid in its /proc


@dataclass(frozen=True, slots=True)
class ProcessState:
    state: str  # R, S, D, T (stopped: alive), Z (exited), …
    start_ticks: int | None  # None: the process exists, but /proc does not show it to us


def host_key(boot_id: str, pid_namespace: int) -> str:
    return hashlib.sha256(f"{boot_id.strip()}/{pid_namespace}".encode()).hexdigest()[:12]


def worker_id(token: str, hostname: str, pid: int, identity: ProcessIdentity | None) -> str:
    """The id a worker leases under; without an identity (no /proc), the old-style id no one can prove dead."""
    if identity is None:
        return f"{hostname}:{pid}:{token}"
    return f"{identity.hostname}:{identity.pid}:{token}:{identity.start_ticks}:{identity.host_key}"


def parse_worker_id(owner: str) -> ProcessIdentity | None:
    """The identity a worker id carries; None for ids without one (older versions, no /proc)."""
    parts = owner.split(":")
    if len(parts) != 5:
        return None
    hostname, pid, _token, start, key = parts
    if not (pid.isdigit() and start.isdigit() and key):
        return None
    return ProcessIdentity(hostname, int(pid), int(start), key)


def parse_stat(text: str) -> ProcessState | None:
    """State and start time from the text of /proc/PID/stat; None if it is not one.

    The command name (field 2) is in parentheses and may itself hold spaces and parentheses,
    so the fields are counted after its last ')'.
    """
    _, paren, rest = text.rpartition(")")
    fields = rest.split()
    if not paren or len(fields) < 20 or not fields[19].isdigit():
        return None
    return ProcessState(fields[0], int(fields[19]))  # fields 3 and 22 of the whole line


def provably_dead(owner: ProcessIdentity, here: ProcessIdentity, seen: ProcessState | None) -> bool:
    """True only if `owner` shares our host and pid namespace and its process is gone.

    `seen` is what our /proc shows at `owner.pid` (None: no such process). A process with that
    pid but another start time is a newcomer that reused the pid; a stopped (frozen) one is alive,
    and so is one we may not read.
    """
    if (owner.hostname, owner.host_key) != (here.hostname, here.host_key):
        return False
    if seen is None:
        return True
    if seen.start_ticks is None:
        return False
    return seen.start_ticks != owner.start_ticks or seen.state in _EXITED_STATES


def past_grace(first_seen: dict[str, float], ended: list[str], now: float, grace: float) -> list[str]:
    """The owners in `ended` first seen so at least `grace` seconds ago; `first_seen` is updated in place
    (owners no longer seen ended are forgotten).

    An owner whose session ended may have proven it, and so dispatched, up to the moment we first saw it
    end; its own proof lasts `grace` (worker/heartbeat.py). After that it sends nothing more.
    """
    for owner in list(first_seen):
        if owner not in ended:
            del first_seen[owner]
    for owner in ended:
        first_seen.setdefault(owner, now)
    return [owner for owner in ended if now - first_seen[owner] >= grace]
