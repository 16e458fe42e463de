"""Atomic writes and temp names: a temp file in the same folder, then rename, so a crash never leaves half a file.

Every temp file or folder the toolkit makes carries ``.tmp-<pid>-<host>-`` in its name. A process killed with
``kill -9`` cannot clean up after itself, so the next process that writes into the same folder removes the leftovers
whose owner (this host, that pid) is no longer alive (``sweep_leftovers``).
"""

import hashlib
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd

try:
    import fcntl
except ImportError:  # Windows: the C runtime's byte-range lock, which the system also drops when its process dies
    fcntl = None  # type: ignore[assignment]
    import msvcrt

log = logging.getLogger(__name__)

_LEFTOVER = re.compile(r"\.tmp-(\d+)-([0-9a-f]{8})-")
_TEMP_FOLDER = re.compile(rf"^{_LEFTOVER.pattern}(.+)$")  # a folder built under a temp name: .tmp-<pid>-<host>-<name>
# Temp run folders written before the pid went into the name: removed once they are a day old.
_OLD_RUN_TMP = re.compile(r"^\.tmp-\d{8}-\d{6}-")
OLD_LEFTOVER_SECONDS = 24 * 3600


def destination(path: str) -> str:
    """``path`` as it will be named once written: a folder being built under a temp name (a run's
    ``.tmp-<pid>-<host>-<run id>``) named by what it becomes, so an error about a file in it names a folder the user
    will know (``runs/titanic/<run id>/oof.parquet``)."""
    return "".join(_TEMP_FOLDER.sub(r"\3", part) for part in re.split(r"([/\\])", path))


def host_tag() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def temp_tag() -> str:
    """The part of a temp name that says who owns it: ``tmp-<pid>-<host>-``."""
    return f"tmp-{os.getpid()}-{host_tag()}-"


def pid_alive(pid: int) -> bool:
    if pid <= 0:  # never signal a process group
        return False
    if os.name != "posix":  # Windows' os.kill ends the process (or signals a console group): count it alive
        return True
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def _is_dead_leftover(entry: Path) -> bool:
    match = _LEFTOVER.search(entry.name)
    if match:
        return match.group(2) == host_tag() and not pid_alive(int(match.group(1)))
    if _OLD_RUN_TMP.match(entry.name):
        try:
            return time.time() - entry.lstat().st_mtime > OLD_LEFTOVER_SECONDS
        except OSError:
            return False
    return False


def sweep_leftovers(folder: Path) -> list[Path]:
    """Remove temp files/folders in ``folder`` left by dead processes of this host; returns what was removed."""
    removed: list[Path] = []
    try:
        entries = [e for e in Path(folder).iterdir() if e.name.startswith(".")]
    except OSError:
        return removed
    for entry in entries:
        if not _is_dead_leftover(entry):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except OSError:
            continue
        removed.append(entry)
    if removed:
        log.info("removed %d leftover temp file(s) of killed runs in %s", len(removed), folder)
    return removed


OWNER = "owner"


def own_mark(folder: Path) -> Path:
    """This process's in-use marker in ``folder``: named like a temp file (pid and host)."""
    return Path(folder) / f".{temp_tag()}{OWNER}"


def mark_in_use(folder: Path) -> Path:
    """Say that this process uses ``folder`` (made if missing), so that other processes leave it alone while this one
    lives (``in_use_elsewhere``)."""
    folder.mkdir(parents=True, exist_ok=True)
    mark = own_mark(folder)
    mark.touch()
    return mark


def in_use_elsewhere(folder: Path) -> bool:
    """Whether another live process marked ``folder`` as in use (one of another host counts as live: it cannot be
    probed from here, and keeping a folder only costs disk)."""
    marks = list(Path(folder).glob(f".tmp-*{OWNER}"))
    hosts = {match.group(2) for mark in marks if (match := _LEFTOVER.search(mark.name)) is not None}
    return bool(hosts - {host_tag()}) or bool(live_owners(marks))


def live_owners(names: Iterable[Path]) -> set[int]:
    """The pids of other live processes of this host that own these temp names (``temp_tag``): the work going on
    beside this process."""
    pids = set()
    for name in names:
        match = _LEFTOVER.search(Path(name).name)
        if match is not None and match.group(2) == host_tag():
            pid = int(match.group(1))
            if pid != os.getpid() and pid_alive(pid):
                pids.add(pid)
    return pids


class FileLock:
    """An exclusive kernel lock on the file ``path`` (``flock``; on Windows the C runtime's byte lock), held between
    ``acquire`` and ``release`` (the interface Optuna's journal calls). The kernel drops it when its process dies, so a
    killed process never leaves a stale lock that the next one waits on (a lock made of a file's existence, as
    Optuna's symlink lock is, stays behind after ``kill -9``). The lock file itself stays: removing it would let a
    third process lock a new file while a second still holds the old one."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self, blocking: bool = True) -> bool:
        """Take the lock, waiting for it (``blocking=False``: False at once if another process holds it)."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            taken = self._lock(fd, blocking)
        except BaseException:  # Ctrl-C while waiting, or a file system without locks: no descriptor left open
            os.close(fd)
            raise
        if not taken:
            os.close(fd)
            return False
        self._fd = fd
        return True

    @staticmethod
    def _lock(fd: int, blocking: bool) -> bool:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True
        while True:  # msvcrt's blocking lock gives up after 10 tries a second apart: wait on, as flock does
            os.lseek(fd, 0, os.SEEK_SET)  # it locks bytes from the current position
            try:
                msvcrt.locking(fd, msvcrt.LK_LOCK if blocking else msvcrt.LK_NBLCK, 1)
                return True
            except OSError:
                if not blocking:
                    return False

    def release(self) -> None:
        if self._fd is not None:
            if fcntl is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            else:
                os.lseek(self._fd, 0, os.SEEK_SET)
                msvcrt.locking(self._fd, msvcrt.LK_UNLCK, 1)
            os.close(self._fd)
            self._fd = None


@contextmanager
def held(path: Path, doing: str, waiting: str | None = None) -> Iterator[None]:
    """Run the block holding the ``FileLock`` on ``path``; where the file system has no locks, run it all the same
    with a warning (``doing`` says what goes on unlocked): the work must not fail for want of a lock. ``waiting``:
    logged when another process holds the lock, before waiting for it."""
    lock = FileLock(path)
    try:
        if waiting is None or not lock.acquire(blocking=False):
            if waiting is not None:
                log.info("%s", waiting)
            lock.acquire()
    except OSError as exc:
        log.warning("cannot lock %s (%s); %s without the lock", path, exc.strerror or exc, doing)
    try:
        yield
    finally:
        lock.release()


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def naming(path: Path) -> Iterator[None]:
    """Errors name ``path``, where the data was going: a failed ``write()`` (a full disk) raises an OSError that names
    no file, and one about a temp file or folder (a read-only disk) names a ``.tmp-`` name the user never chose."""
    try:
        yield
    except OSError as exc:
        if exc.filename and not _LEFTOVER.search(Path(str(exc.filename)).name):
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from exc


def _atomic(path: Path, write) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_leftovers(path.parent)
    with naming(path):
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{temp_tag()}")
        try:
            # mkstemp makes 0600 files; a written file should get the same mode as any other the user creates.
            if hasattr(os, "fchmod"):  # Windows before Python 3.13 has none (nor such modes)
                os.fchmod(fd, 0o666 & ~current_umask())
            with os.fdopen(fd, "wb") as fh:
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return path


def make_temp_dir(parent: Path, prefix: str) -> Path:
    """A temp folder in ``parent`` (same file system, so it can be renamed into place) that a later sweep can
    recognise as this process's."""
    parent.mkdir(parents=True, exist_ok=True)
    sweep_leftovers(parent)
    with naming(parent):
        tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{prefix}.{temp_tag()}"))
    tmp.chmod(0o777 & ~current_umask())
    return tmp


def write_with(path: Path, write: Callable[[BinaryIO], object]) -> Path:
    """Atomically write whatever ``write(file)`` puts into a binary file (torch.save, a parquet writer...)."""
    return _atomic(path, write)


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    return _atomic(path, lambda fh: fh.write(data))


def write_text_atomic(path: Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, obj: Any) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def write_csv_atomic(path: Path, df: pd.DataFrame) -> Path:
    return write_bytes_atomic(path, df.to_csv(index=False, lineterminator="\n").encode("utf-8"))


def set_aside(path: Path) -> Path:
    """Move a damaged file out of the way as ``<name>.damaged`` (kept for a look, never read again); returns where."""
    aside = path.with_name(path.name + ".damaged")
    path.replace(aside)
    return aside
