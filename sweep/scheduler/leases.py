"""Who owns a run: lease owner names, and recognising owners that are certainly dead.

A driver names itself ``host/boot/pidns/pid/nonce``. Leases expire on their own when a driver
dies (the store's contract), but a relaunch on the same machine need not wait for that: an
owner on this host whose boot id differs (the machine rebooted) or whose process no longer
exists in this PID namespace is dead, and its lease can be dropped at once. Anything else
(another host, another container, a live or reused PID) is left to expire.
"""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
_PID_NS = Path("/proc/self/ns/pid")


def owner_name() -> str:
    """A lease owner name for this process, unique across drivers."""
    fields = (socket.gethostname(), _boot_id(), _pid_namespace(), str(os.getpid()))
    return "/".join(fields) + "/" + uuid.uuid4().hex[:8]


def is_dead_owner(owner: str | None) -> bool:
    """True only if ``owner`` certainly names a driver that no longer runs."""
    if not owner:
        return False
    parts = owner.split("/")
    if len(parts) != 5 or parts[0] != socket.gethostname():
        return False
    _, boot, pidns, pid, _ = parts
    if boot != _boot_id():
        return boot != "?" and _boot_id() != "?"
    if pidns != _pid_namespace() or pidns == "?" or not pid.isdigit():
        return False
    return not _pid_alive(int(pid))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return _not_zombie(pid)


def _not_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _boot_id() -> str:
    try:
        return _BOOT_ID.read_text().strip()[:8]
    except OSError:
        return "?"


def _pid_namespace() -> str:
    try:
        return str(_PID_NS.stat().st_ino)
    except OSError:
        return "?"
