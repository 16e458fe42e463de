"""Where tuning studies live: the embedded journal file under ``runs/<competition>/`` (locked with the kernel's
``flock``, so several processes on one machine share it and a killed one leaves no lock behind; a line cut short by a
killed writer is repaired) or any SQLAlchemy URL - PostgreSQL first-class, with heartbeats so a dead worker's trial is
failed and retried. One interface for all of them (``open_storage``), as Optuna's own storages have; every failure
to reach one is a single line. ``common.tuning`` runs the studies."""

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState

from common import paths
from common.compute import env_int
from common.errors import TuningError, UsageError
from common.io import FileLock, naming
from common.runs import OWN_PARAMS

log = logging.getLogger(__name__)
# Heartbeats and the retry callback are marked experimental; they are the documented way and we test them.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
# A trial of a worker whose heartbeat stopped is failed and retried this many times at most.
MAX_RETRY = 2


def default_storage(competition: str) -> str:
    """The embedded journal of a competition (by its CLI name), where its studies live unless a URL is given."""
    return str(paths.runs_dir(competition) / "optuna.journal")


def display_url(url: str) -> str:
    """The storage URL without its password, for logs and run records."""
    if "://" not in url:
        return url
    import sqlalchemy

    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is reported by open_storage
        return url


def journal_file(url: str) -> Path | None:
    """The journal file a storage URL names (a plain path or ``journal://``); None for a database URL."""
    if "://" not in url or url.startswith("journal://"):
        return Path(url.removeprefix("journal://")).expanduser()
    return None


def storage_file(url: str) -> Path | None:
    """The file behind a journal path or an SQLite URL; None for a database server (or SQLite in memory)."""
    journal = journal_file(url)
    if journal is not None:
        return journal
    scheme, _, rest = url.partition(":///")
    if scheme.split("+")[0] == "sqlite" and rest and not rest.startswith(":memory:"):
        return Path(rest.split("?")[0])
    return None


def require_storage(url: str, then: str) -> None:
    """Readers (``--params best``, the report) must not create a storage where a typo points: one usage line,
    ``then`` saying what to do."""
    path = storage_file(url)
    if path is not None and not path.is_file():
        raise UsageError(f"no tuning storage at {path}; {then}")


def remove_stale_symlink_lock(journal: Path) -> bool:
    """Optuna's own journal lock (``<journal>.lock``) is never taken by this toolkit, so one that exists was left by
    a killed process of an older version: remove it at once rather than wait out its grace period."""
    lock = Path(f"{journal}.lock")
    if not lock.is_symlink() and not lock.exists():
        return False
    lock.unlink()
    log.warning("removed a stale journal lock %s left by a killed tuning run", lock)
    return True


class JournalFile(JournalFileBackend):
    """Optuna's journal file backend, whose failed append (a full disk) names the file: Optuna's own error does not."""

    def __init__(self, path: Path, lock: FileLock):
        # Optuna types the lock as its private base class; it only calls acquire and release.
        super().__init__(str(path), lock_obj=lock)  # type: ignore[arg-type]
        self.path = path

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        with naming(self.path):
            super().append_logs(logs)


def journal_storage(path: Path) -> JournalStorage:
    """The journal file as an Optuna storage. Optuna replays every line on opening. A last line cut short (a writer
    killed mid-line) is removed with a warning: Optuna skips it, but its next write would bury it mid-file. Any other
    damage (a line edited by hand, another file) is one line naming the first bad line, and the file is left as it
    is, since it holds the study's trials."""
    lock = FileLock(Path(f"{path}.flock"))
    bad = ""
    if path.is_file():
        try:
            locked = lock.acquire()  # the writers' lock: no line is being appended while the file is checked
        except OSError:  # a folder we may not write to (a report reading someone's journal): check, never repair
            locked = False
        try:
            bad = _checked_journal(path, repair=locked)
        finally:
            lock.release()
    damaged = TuningError(f"tuning journal {path} is damaged{bad}; move it away to start a new study, or repair "
                          "that line")
    if bad:
        raise damaged
    try:
        return JournalStorage(JournalFile(path, lock))
    except OSError:
        raise
    except Exception as exc:  # noqa: BLE001 - Optuna's replay fails in many ways; all mean "not a usable journal"
        raise damaged from exc


def _checked_journal(path: Path, repair: bool) -> str:
    """Where a journal stops being Optuna's (a line that is not JSON or not a journal entry), or empty when every line
    is fine. A last line without a line break (Optuna ends every line it writes with one) is cut off with ``repair``
    (under the writers' lock), else left to Optuna, which skips it."""
    with open(path, "rb") as fh:
        end = 0
        for number, line in enumerate(fh, start=1):
            if not line.endswith(b"\n"):
                if not repair:
                    return ""
                os.truncate(path, end)
                log.warning("removed the last line of tuning journal %s: cut short (%d bytes) by a killed writer",
                            path, len(line))
                return ""
            try:
                entry = json.loads(line)
            except ValueError:
                return f" at line {number} (not JSON)"
            if not isinstance(entry, dict) or "op_code" not in entry:
                return f" at line {number} (not an Optuna journal entry)"
            end += len(line)
    return ""


def open_storage(url: str | None, competition: str) -> tuple[BaseStorage, str]:
    """Build the storage for a URL (None = the competition's embedded journal file, by its CLI name); fail with one
    line if it cannot be reached."""
    url = url or default_storage(competition)
    path = journal_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_symlink_lock(path)
        return journal_storage(path), str(path)
    dialect = url.partition("://")[0].split("+")[0]
    if dialect == "postgres":  # Heroku-style URLs: SQLAlchemy dropped this alias (its error: "Can't load plugin")
        raise UsageError(f"tuning storage {display_url(url)}: write postgresql:// - SQLAlchemy does not accept "
                         "postgres://")
    file = storage_file(url)
    if file is not None:  # an SQLite file's folder is made, as a journal's is (SQLite: "unable to open database file")
        file.parent.mkdir(parents=True, exist_ok=True)
    try:
        if url.startswith("sqlite"):
            # SQLite serialises writers; a generous busy timeout keeps "database is locked" away.
            storage = RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
        else:
            engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
            if url.startswith("postgresql"):
                engine_kwargs["connect_args"] = {"connect_timeout": 10}
            heartbeat = env_int("KIT_HEARTBEAT_SECONDS", 10)
            storage = RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat,
                grace_period=3 * heartbeat,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY),
            )
    except ImportError as exc:
        fix = ("pip install -e '.[postgres]'" if dialect == "postgresql" else
               f"install the Python driver SQLAlchemy uses for {dialect}:// (e.g. mysql+pymysql:// needs pymysql)")
        raise TuningError(f"no database driver for {display_url(url)}: {fix} ({exc})") from exc
    except Exception as exc:  # noqa: BLE001 - sqlalchemy raises many types; all mean "cannot use it"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TuningError(f"cannot reach tuning storage {display_url(url)}: {first}") from exc
    return storage, url


def histories(url: str, prefix: str = "") -> dict[str, list[tuple[int, float, bool]]]:
    """(trial number, value, whether it is the recipe's own params) of every complete trial of each study whose name
    starts with ``prefix``, read from a journal file or any SQLAlchemy URL (PostgreSQL included), for the report."""
    journal = journal_file(url)
    storage: BaseStorage = (journal_storage(journal) if journal is not None
                            else RDBStorage(url, skip_compatibility_check=True))
    out = {}
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        if summary.study_name.startswith(prefix):
            study = optuna.load_study(study_name=summary.study_name, storage=storage)
            out[summary.study_name] = [(t.number, t.value, bool(t.user_attrs.get(OWN_PARAMS))) for t in
                                       study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                                       if t.value is not None]
    return out
