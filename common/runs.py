"""Run records on disk: ``runs/<competition>/<time>-<recipe>-<hash>/`` with run.json, predictions, submission, log.

A run is built in a hidden temp folder and renamed into place only when complete, so a crash or Ctrl-C leaves no
half-written run; an existing run folder is never overwritten.
"""

import hashlib
import importlib.metadata
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from common import paths
from common.io import sweep_leftovers, temp_tag, write_json_atomic, write_with
from common.metrics import Metric

log = logging.getLogger(__name__)

TRACKED_LIBRARIES = ("numpy", "pandas", "scikit-learn", "lightgbm", "optuna", "torch", "kaggle", "pyarrow")


def git_commit() -> str | None:
    """The project's commit, with ``-dirty`` when files differ from it, so a run can be traced to code."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")


def environment() -> dict[str, Any]:
    versions = {}
    for lib in TRACKED_LIBRARIES:
        try:
            versions[lib] = importlib.metadata.version(lib)
        except importlib.metadata.PackageNotFoundError:
            continue
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "libraries": versions,
        "git_commit": git_commit(),
    }


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
        self._handler: logging.Handler | None = None

    def __enter__(self) -> "RunWriter":
        self.parent.mkdir(parents=True, exist_ok=True)
        sweep_leftovers(self.parent)  # what runs killed with kill -9 left behind
        self.tmp.mkdir()
        self._handler = logging.FileHandler(self.tmp / "log.txt", encoding="utf-8")
        self._handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger().addHandler(self._handler)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._close_log()
        if exc_type is not None and self.tmp.exists():
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _close_log(self) -> None:
        if self._handler is not None:
            logging.getLogger().removeHandler(self._handler)
            self._handler.close()
            self._handler = None

    def header(self) -> dict[str, Any]:
        """The identifying fields every run.json starts with."""
        return {"run_id": self.run_id, "started": self.started.isoformat(timespec="seconds")}

    def path(self, name: str) -> Path:
        return self.tmp / name

    def write_frame(self, name: str, df: pd.DataFrame) -> Path:
        return write_with(self.path(name), lambda fh: df.to_parquet(fh, index=False))

    def finish(self, record: dict[str, Any]) -> Path:
        """Write run.json and move the finished run into place; returns the final folder."""
        self._close_log()
        write_json_atomic(self.tmp / "run.json", record)
        if self.final.exists():
            raise FileExistsError(f"run folder {self.final} already exists; refusing to overwrite it")
        os.rename(self.tmp, self.final)
        log.info("run written to %s", self.final)
        return self.final


def load_runs(competition: str | None = None) -> list[dict[str, Any]]:
    """Every complete run's record (with its folder as ``path``); unreadable records are skipped with a warning."""
    root = paths.home() / "runs"
    parents = [root / competition] if competition else sorted(p for p in root.glob("*") if p.is_dir())
    records = []
    for parent in parents:
        for folder in sorted(parent.glob("*")):
            if not folder.is_dir() or folder.name.startswith("."):
                continue
            try:
                record = json.loads((folder / "run.json").read_text())
                record["path"] = str(folder)
                records.append(record)
            except (OSError, ValueError) as exc:
                log.warning("skipping %s: run.json is missing or unreadable (%s)", folder, exc)
    return records


def update_record(folder: str | Path, changes: dict[str, Any]) -> dict[str, Any]:
    """Merge ``changes`` into a finished run's run.json, atomically (used to add Kaggle submission refs and
    scores; nothing else of a run is ever rewritten)."""
    path = Path(folder) / "run.json"
    record = json.loads(path.read_text())
    record.update(changes)
    write_json_atomic(path, record)
    return record


def best_run(records: list[dict[str, Any]], metric: Metric) -> dict[str, Any] | None:
    """The run with the best CV mean in the metric's own direction, among runs scored on the same folds.

    CV means over different fold assignments (another k, another fold seed) are not comparable - 20 folds of a few
    rows each can win by luck - so only the runs on the folds most runs used compete (the newest run breaks a tie).
    """
    scored = [r for r in records if isinstance(r.get("cv", {}).get("mean"), int | float)]
    if not scored:
        return None

    def folds_of(record: dict[str, Any]) -> str | None:
        return (record.get("folds") or {}).get("hash")

    counts = Counter(folds_of(r) for r in scored)
    newest = {folds_of(r): r.get("started", "") for r in sorted(scored, key=lambda r: r.get("started", ""))}
    common = max(counts, key=lambda h: (counts[h], newest[h]))
    skipped = len(scored) - counts[common]
    if skipped:
        log.info("best run chosen among %d runs on the same folds; %d runs on other folds are not compared "
                 "(pick one with --run)", counts[common], skipped)
    same = [r for r in scored if folds_of(r) == common]
    return metric.rank(same, lambda r: r["cv"]["mean"])[0]
