"""One writer per run directory: an exclusive `fcntl.flock` on `RUN/.lock`.

Two searches on one run directory train every trial twice, and a `--resume` beside a live
search marks the live one's in-flight trial failed; so `search`, `retrain` and `run` hold this
lock for their whole duration and a second process gets one clear error naming the holder.

Why `flock`: the kernel releases the lock when its holder exits, even on `kill -9`, so a lock
file left behind by a dead process never blocks (there is no "stale lock" to detect or break).
The file is never deleted (deleting it would let two processes lock two different files of the
same name); it only records who holds it — pid, host, command, start time — for the message.

Re-entrant within a process: `run` holds the lock while its search and retrain stages take it
again. `flock` locks belong to an open file, so a second `open` + `flock` in the same process
would refuse itself; the held locks are therefore counted per process in `_HELD`.
Worker processes are spawned, and the descriptor is close-on-exec, so they never inherit it.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from medseg_nas.errors import MedsegError

LOCK_NAME = ".lock"


class RunDirBusy(MedsegError):
    """Another process holds the run directory's lock."""


@dataclass
class _Held:
    fd: int
    depth: int


# locks this process holds, by real path of the run directory (see the module docstring)
_HELD: dict[str, _Held] = {}
_GUARD = threading.Lock()


def holder(run_dir: str | Path) -> dict | None:
    """What the lock file says about its (last) holder, or None when unreadable/empty."""
    try:
        d = json.loads((Path(run_dir) / LOCK_NAME).read_text())
    except (OSError, ValueError):
        return None
    return d if isinstance(d, dict) else None


def _describe(info: dict | None) -> str:
    if not info:
        return "another process (it has not written its details yet)"
    return (f"pid {info.get('pid', '?')} on host {info.get('host', '?')}, running `{info.get('command', '?')}`"
            f" since {info.get('since', '?')}")


def _acquire(run_dir: Path) -> int:
    path = run_dir / LOCK_NAME
    if not run_dir.is_dir():
        raise MedsegError(f"run directory {run_dir} does not exist")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise MedsegError(f"cannot create the lock file {path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        info = holder(run_dir)
        for _ in range(10):  # the holder writes its details right after locking: give it a moment
            if info:
                break
            time.sleep(0.05)
            info = holder(run_dir)
        raise RunDirBusy(
            f"run directory {run_dir} is in use by {_describe(info)} (lock {path}); wait for it to "
            "finish or stop it, or use another --run-dir"
        ) from None
    except OSError as exc:  # e.g. ENOLCK: a filesystem without locks
        os.close(fd)
        raise MedsegError(f"cannot lock {path}: {exc.strerror} (does this filesystem support file locks?)") from None
    info = {"pid": os.getpid(), "host": socket.gethostname(), "command": _command(),
            "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    data = json.dumps(info).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    return fd


def _command() -> str:
    """This process's command line as the user typed it (for the holder's description)."""
    argv = list(sys.argv) or ["python"]
    name = Path(argv[0]).name
    if name == "__main__.py":
        name = "python -m medseg_nas"
    return " ".join([name, *argv[1:]])[:300]


@contextmanager
def run_dir_lock(run_dir: str | Path) -> Iterator[Path]:
    """Hold `run_dir`'s lock for the `with` block (re-entrant in this process); RunDirBusy if taken."""
    run_dir = Path(run_dir)
    key = os.path.realpath(run_dir)
    with _GUARD:
        held = _HELD.get(key)
        if held is not None:
            held.depth += 1
        else:
            held = _HELD[key] = _Held(_acquire(run_dir), 1)
    try:
        yield run_dir / LOCK_NAME
    finally:
        with _GUARD:
            held.depth -= 1
            if held.depth == 0:
                del _HELD[key]
                os.ftruncate(held.fd, 0)  # released cleanly: the file names no holder any more
                os.close(held.fd)  # releases the flock; the file stays (see the module docstring)
