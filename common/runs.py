"""Run records on disk: ``runs/<competition>/<time>-<recipe>-<hash>/`` with run.json, predictions, submission, log.

A run is built in a hidden temp folder and renamed into place only when complete, so a crash or Ctrl-C leaves no
half-written run; an existing run folder is never overwritten.
"""

import hashlib
import json
import logging
import os
import shutil
import sys
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import MISSING, dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, get_origin, get_type_hints

import numpy as np
import pandas as pd

from common import paths
from common.errors import UsageError
from common.io import held, naming, sweep_leftovers, temp_tag, write_bytes_atomic, write_json_atomic, write_with
from common.metrics import Metric
from common.provenance import CodeState, code_state

log = logging.getLogger(__name__)

# The uncommitted changes a run ran with, kept in its folder: ``git apply`` on its commit gives its code back.
PATCH_FILE = "code.patch"


class RunLog(logging.FileHandler):
    """A run's log.txt. A write that fails (a full disk) ends the log, quietly: logging's default prints a traceback
    for every later line. The run's own writes then fail with one line, or, when they succeed, the run is kept and
    the console says where its log stops."""

    def __init__(self, path: Path):
        super().__init__(path, encoding="utf-8")
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self.failed: OSError | None = None
        self.failed_at = ""

    def emit(self, record: logging.LogRecord) -> None:
        if self.failed is None:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):
            super().handleError(record)
        elif self.failed is None:
            self.failed, self.failed_at = error, datetime.fromtimestamp(record.created).strftime("%H:%M:%S")

    def close(self) -> None:
        try:
            super().close()  # flushes what is buffered
        except OSError as error:
            if self.failed is None:
                self.failed, self.failed_at = error, "the end"


class RunWriter:
    """Context manager that owns one run folder from creation to the final rename."""

    def __init__(self, competition: str, recipe: str, config: dict[str, Any]):
        self.started = datetime.now(UTC)
        stamp = self.started.strftime("%Y%m%d-%H%M%S")
        digest = hashlib.sha256(
            json.dumps([config, stamp, os.getpid(), self.started.microsecond], default=str).encode()
        ).hexdigest()[:6]
        self.run_id = f"{stamp}-{recipe}-{digest}"
        self.parent = paths.runs_dir(competition)
        self.final = self.parent / self.run_id
        self.tmp = self.parent / f".{temp_tag()}{self.run_id}"
        self._handler: RunLog | None = None
        self.code = CodeState(None)

    def __enter__(self) -> "RunWriter":
        self.parent.mkdir(parents=True, exist_ok=True)
        sweep_leftovers(self.parent)  # what runs killed with kill -9 left behind
        with naming(self.parent):
            self.tmp.mkdir()
        try:
            self.code = code_state()  # the code as the run starts: an edit made while it trains is not what it ran
            if self.code.patch:
                write_bytes_atomic(self.path(PATCH_FILE), self.code.patch_bytes)
            self._handler = RunLog(self.tmp / "log.txt")
        except BaseException:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise
        logging.getLogger().addHandler(self._handler)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._close_log()
        if exc_type is not None and self.tmp.exists():
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _close_log(self) -> RunLog | None:
        handler, self._handler = self._handler, None
        if handler is not None:
            logging.getLogger().removeHandler(handler)
            handler.close()
        return handler

    def header(self) -> dict[str, Any]:
        """The identifying fields every run.json starts with."""
        return {"run_id": self.run_id, "started": self.started.isoformat(timespec="seconds")}

    def path(self, name: str) -> Path:
        return self.tmp / name

    def write_frame(self, name: str, df: pd.DataFrame) -> Path:
        return write_with(self.path(name), lambda fh: df.to_parquet(fh, index=False))

    def finish(self, record: "RunRecord") -> Path:
        """Write run.json and move the finished run into place; returns the final folder."""
        run_log = self._close_log()
        record.write(self.tmp)
        if self.final.exists():
            raise FileExistsError(f"run folder {self.final} already exists; refusing to overwrite it")
        os.rename(self.tmp, self.final)
        log.info("run written to %s", self.final)
        if run_log is not None and run_log.failed is not None:
            log.warning("its log.txt is cut short (at %s: %s); the run itself is complete", run_log.failed_at,
                        run_log.failed.strerror or run_log.failed)
        return self.final


# Fields that only some runs have: left out of run.json when empty, so older records round-trip unchanged.
OMITTED_WHEN_EMPTY = ("importance", "ensemble", "memory")
ENVIRONMENT_KEYS = ("python", "platform", "cpu_count", "cpu_flags", "libraries", "git_commit", "code_patch",
                    "code_sha256", "processes")


# The mark of a tuning study's trial of the recipe's own params (a trial user attribute, and in a run's params_source).
OWN_PARAMS = "recipe_params"


def won_a_study(source: dict[str, Any], folds_hash: str | None = None) -> bool:
    """Whether params from ``source`` (a run's ``params_source``) are a study's best trial other than the recipe's own
    params (queued first in every study: when none beat them, the CV is that of the recipe as it is), chosen on the
    folds ``folds_hash`` names when given (on other folds they were never picked for, as compare.py --tuned scores
    them). A stack's params won one if any member's did."""
    if source.get("kind") == "stack":
        return any(won_a_study(member, folds_hash) for member in source.get("members", {}).values())
    chosen_on = source.get("folds_hash")
    return (source.get("kind") == "study" and not source.get(OWN_PARAMS)
            and (folds_hash is None or chosen_on is None or chosen_on == folds_hash))


def trials_text(source: dict[str, Any]) -> str:
    """The trials a run's params came from, for people: ``#6`` for a study's trial, ``members ridge #11, lgbm #16``
    for the members of a stack whose studies found better than their own params."""
    if source.get("kind") == "stack":
        won = [f"{m} #{src['trial']}" for m, src in source.get("members", {}).items() if won_a_study(src)]
        return "members " + ", ".join(won) if won else "members' own params"
    return f"#{source.get('trial')}"


@dataclass
class RunRecord:
    """What a run folder's run.json holds: written and read only here (``write`` / ``read``), one typed structure.

    Records written by earlier versions read the same way (optional fields take their defaults, unknown fields are
    kept and written back untouched). Mapping-style reads (``record["cv"]``) work too, for scripts of users.
    """

    run_id: str
    started: str
    competition: str
    recipe: str
    metric: dict[str, str]  # name, direction
    cv: dict[str, Any]  # mean, std, fold_scores, oof_score, members
    slug: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    params_source: dict[str, Any] = field(default_factory=lambda: {"kind": "recipe"})
    seed: int = 0
    folds: dict[str, Any] = field(default_factory=dict)  # kind, n_splits, seed, grouping / windows, hash, path
    data: dict[str, Any] = field(default_factory=dict)  # source, folder, sha256 of every file
    submission: dict[str, Any] = field(default_factory=dict)  # file, rows, sha256
    kaggle_submissions: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, Any] = field(default_factory=dict)
    memory: dict[str, Any] = field(default_factory=dict)  # peak_rss_mb: the process's peak while the run was made
    importance: dict[str, Any] = field(default_factory=dict)  # kind (gain | permutation), folds, features
    ensemble: dict[str, Any] = field(default_factory=dict)  # an ensemble's method, members, weights (honest CV)
    environment: dict[str, Any] = field(default_factory=dict)  # python, platform, cpu count, libraries, git commit
    extra: dict[str, Any] = field(default_factory=dict)  # fields this version does not know
    path: Path | None = None  # the run folder (not written)

    def cv_text(self, sep: str = " ± ") -> str:
        """The CV mean ± its spread over the scored folds, for people; one scored fold has no spread to show (a
        std of 0 would read as a perfectly stable score): "0.97393 (1 fold)"."""
        mean = f"{self.cv['mean']:.5f}"
        return f"{mean} (1 fold)" if len(self.cv["fold_scores"]) == 1 else f"{mean}{sep}{self.cv['std']:.5f}"

    def leaderboard(self, key: str = "public_score") -> float | None:
        """The newest Kaggle score of its file (``public_score`` or ``private_score``); None if never scored."""
        scores = [s.get(key) for s in self.kaggle_submissions if s.get(key) is not None]
        return scores[-1] if scores else None

    @property
    def folds_scored(self) -> int:
        """How many of its folds the run scored: all, or fewer (``--folds-scored``: the first row folds, or the
        newest backtest windows)."""
        return int(self.cv.get("folds_scored", len(self.cv.get("fold_scores") or [])))

    @property
    def accepted_submissions(self) -> list[dict[str, Any]]:
        """Its submissions that Kaggle did not reject: a rejected file is not one Kaggle has."""
        return [entry for entry in self.kaggle_submissions if entry.get("status") != "ERROR"]

    def kaggle_status(self) -> str | None:
        """What Kaggle made of the newest submission of its file: PENDING (not scored yet, or not synced since),
        COMPLETE or ERROR (rejected); None if never submitted."""
        if not self.kaggle_submissions:
            return None
        return self.kaggle_submissions[-1].get("status") or "PENDING"

    @property
    def tuned(self) -> bool:
        """Whether its params won a tuning study on its own folds: its CV is then a best of many tries."""
        return won_a_study(self.params_source, self.folds.get("hash"))

    @property
    def folder(self) -> Path:
        """The run folder of a record read from one (a record built in memory has none)."""
        if self.path is None:
            raise ValueError(f"run {self.run_id} was not read from a run folder")
        return self.path

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("environment", "extra", "path")
               and not (f.name in OMITTED_WHEN_EMPTY and not getattr(self, f.name))}
        return {**out, **self.environment, **self.extra}

    @classmethod
    def from_json(cls, obj: Any, path: Path | None = None) -> "RunRecord":
        """Refuse what is not a run record (ValueError naming the first problem)."""
        if not isinstance(obj, dict):
            raise ValueError("it is not a JSON object")
        known = {f.name for f in fields(cls)} - {"environment", "extra", "path"}
        types = get_type_hints(cls)
        for f in fields(cls):  # each field of the file of the kind this class holds (required ones present)
            optional = f.default is not MISSING or f.default_factory is not MISSING
            if f.name not in known or (optional and f.name not in obj):
                continue
            kind = get_origin(types[f.name]) or types[f.name]
            if not isinstance(obj.get(f.name), kind) or (kind is int and isinstance(obj[f.name], bool)):
                raise ValueError(f"its {f.name!r} is missing or not of type {kind.__name__}")
        if not isinstance(obj["metric"].get("name"), str):
            raise ValueError("its metric has no name")
        cv = obj["cv"]
        numbers = [cv.get("mean"), cv.get("std"), *(cv.get("fold_scores") or [None])]
        if not isinstance(cv.get("fold_scores"), list) or not all(
                isinstance(x, int | float) and not isinstance(x, bool) for x in numbers):
            raise ValueError("its CV has no mean, std and fold scores (numbers)")
        return cls(**{k: v for k, v in obj.items() if k in known},
                   environment={k: obj[k] for k in ENVIRONMENT_KEYS if k in obj},
                   extra={k: v for k, v in obj.items() if k not in known and k not in ENVIRONMENT_KEYS}, path=path)

    @classmethod
    def read(cls, folder: str | Path) -> "RunRecord":
        folder = Path(folder)
        return cls.from_json(json.loads((folder / "run.json").read_text()), folder)

    def write(self, folder: str | Path) -> None:
        write_json_atomic(Path(folder) / "run.json", self.to_json())

    def __getitem__(self, key: str) -> Any:
        if key == "path":
            return None if self.path is None else str(self.path)
        value = self.to_json().get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default


_MISSING = object()


_WARNED: set[Path] = set()


def load_runs(competition: str | None = None) -> list[RunRecord]:
    """Every complete run's record; unreadable ones are skipped with a warning that names the folder."""
    root = paths.home() / "runs"
    parents = [root / competition] if competition else sorted(p for p in root.glob("*") if p.is_dir())
    records = []
    for parent in parents:
        for folder in sorted(parent.glob("*")):
            if not folder.is_dir() or folder.name.startswith("."):
                continue
            try:
                records.append(RunRecord.read(folder))
            except (OSError, ValueError) as exc:
                if folder in _WARNED:  # the report and ensemble read the runs more than once: one warning each
                    continue
                _WARNED.add(folder)
                log.warning("skipping %s: run.json is missing or not a run record (%s); move the folder away if "
                            "it is not a run", folder, exc)
    return records


def find_run(records: list[RunRecord], run_id: str, competition: str) -> RunRecord:
    """The run ``run_id`` names: its whole id, or a prefix only one run has (ids start with their time, so
    ``20261122-2130`` is enough when one run started that minute)."""
    exact = [r for r in records if r.run_id == run_id]
    matches = exact or [r for r in records if r.run_id.startswith(run_id)]
    if not matches:
        raise UsageError(f"no run {run_id} under runs/{competition}/ (see python scripts/leaderboard.py "
                         f"{competition})")
    if len(matches) > 1:
        raise UsageError(f"{len(matches)} runs of {competition} match {run_id!r}; give more of the run id")
    return matches[0]


# One lock for the records of a competition's runs, beside them: a run folder keeps only what the run wrote.
RECORDS_LOCK = ".records.flock"


def update_record(folder: str | Path, change: Callable[["RunRecord"], dict[str, Any]]) -> RunRecord:
    """Change fields of a finished run's record (used to add Kaggle submission refs and scores; nothing else of a run
    is ever rewritten): ``change`` gets the record as it is on disk and returns the new values of the fields it
    changes. Read, change and write happen under one lock of the competition's records, so a submit and a ``--sync``
    (or two of either) running at once each keep the other's entries, instead of writing back a record read before
    the other wrote."""
    # a file system without locks: the record still gets its entry (a submission was made)
    with held(Path(folder).parent / RECORDS_LOCK, f"updating {Path(folder).name}"):
        current = RunRecord.read(folder)
        record = replace(current, **change(current))
        record.write(folder)
    return record


H = TypeVar("H", bound=Hashable)


def most_used(records: list[RunRecord], key: Callable[[RunRecord], H]) -> H:
    """The value of ``key`` most runs share (the newest run breaks a tie)."""
    counts = Counter(key(r) for r in records)
    newest = {key(r): r.started for r in sorted(records, key=lambda r: r.started)}
    return max(counts, key=lambda v: (counts[v], newest[v]))


def common_folds(records: list[RunRecord]) -> str | None:
    """The folds hash most runs share: the folds on which runs can be compared."""
    return most_used(records, lambda r: r.folds.get("hash"))


def best_run(records: list[RunRecord], metric: Metric, quiet: bool = False) -> RunRecord | None:
    """The run with the best CV mean in the metric's own direction, among runs scored on the same folds.

    CV means over different fold assignments (another k, another fold seed) are not comparable - 20 folds of a few
    rows each can win by luck - so only the runs on the folds most runs used compete (the newest run breaks a tie).
    Runs that scored only some of those folds (``--folds-scored``: the digit CNN's one held-out fold, a quick look
    at the newest backtest window) count their folds' difficulty (``rank_by_cv``): a fold's luck is not a
    gain.
    """
    scored = [r for r in records if isinstance(r.cv.get("mean"), int | float)]
    if not scored:
        return None
    common = common_folds(scored)
    skipped = sum(r.folds.get("hash") != common for r in scored)
    if skipped and not quiet:
        log.info("best run chosen among %d runs on the same folds; %d runs on other folds are not compared "
                 "(pick one with --run)", len(scored) - skipped, skipped)
    return rank_by_cv([r for r in scored if r.folds.get("hash") == common], metric, quiet)[0]


def standing(run: RunRecord, records: list[RunRecord], metric: Metric,
             siblings: list[RunRecord] | None = None) -> str | None:
    """Where ``run`` stands among the runs on its folds, ranked as ``best_run`` ranks them: the question after every
    run ("better than my best?"). ``records``: every run; a tie goes to them, the runs made before. ``siblings``: the
    runs the same command made, which it already beat. None when no earlier run is on its folds."""
    mine = {r.run_id for r in siblings or []} | {run.run_id}
    peers = [r for r in records if r.folds.get("hash") == run.folds.get("hash") and r.run_id not in mine
             and isinstance(r.cv.get("mean"), int | float)]
    below = [r for r in siblings or [] if r.folds.get("hash") == run.folds.get("hash") and r.run_id != run.run_id]
    if not peers:
        return None
    ranked = rank_by_cv([*peers, run, *below], metric, quiet=True)  # a stable sort: ties keep this order
    place = ranked.index(run) + 1
    of = f"of {len(ranked)} runs on these folds by CV"
    if place == 1:
        before = next(r for r in ranked[1:] if all(r is not sibling for sibling in below))
        gain = metric.gain(run.cv["mean"], before.cv["mean"])
        return (f"#1 {of}, {gain:.5f} above the best before, {before.recipe} run {before.run_id} "
                f"({before.cv_text()})")
    best = ranked[0]
    tie = ", the same CV made before" if metric.gain(run.cv["mean"], best.cv["mean"]) == 0 else ""
    return f"#{place} {of}; the best is {best.recipe} run {best.run_id} ({best.cv_text()}){tie}"


def best_unsent(records: list[RunRecord], metric: Metric, quiet: bool = False) -> RunRecord | None:
    """The best run by CV whose file no submission Kaggle accepted holds (by this run or another with the same
    sha256): the one worth a submission."""
    sent = {r.submission.get("sha256") for r in records if r.accepted_submissions}
    return best_run([r for r in records if r.submission.get("sha256") not in sent], metric, quiet)


def rank_by_cv(runs: list[RunRecord], metric: Metric, quiet: bool = False) -> list[RunRecord]:
    """Runs on one fold assignment, best first by CV. Runs that scored every fold rank by their CV mean. A run that
    scored only some (``--folds-scored``: the first row folds, or the newest backtest windows, as ``Folds.scored``)
    ranks by its fold scores less each fold's difficulty, measured on the runs that scored every fold: a quick look
    at an easy fold 0 does not outrank a full CV, and does not reduce every full CV to that fold's luck either. With
    one full run this is the comparison on the shared folds, put on the full CV's scale."""
    scores = {id(r): np.asarray(r.cv.get("fold_scores") or [], dtype=float) for r in runs}
    most = max((len(s) for s in scores.values()), default=0)
    reference = np.array([s for s in scores.values() if len(s) == most]) if most else np.empty((0, 0))
    difficulty = reference.mean(axis=0) - reference.mean() if most else np.empty(0)
    if not quiet and any(0 < len(s) < most for s in scores.values()):
        log.info("runs that scored fewer than %d folds ranked by their scores less each fold's difficulty on the "
                 "%d run(s) that scored all", most, len(reference))

    def cv(run: RunRecord) -> float:
        own = scores[id(run)]
        if not 0 < len(own) < most:
            return float(run.cv["mean"])
        shift = difficulty[-len(own):] if run.folds.get("kind") == "backtest" else difficulty[:len(own)]
        return float(np.mean(own - shift))

    return metric.rank(runs, cv)
