"""Finished folds of a training run, kept until the run is written, so an interrupted run (Ctrl-C, a crash, a
reboot) resumes where it stopped: the same command fits only the folds it had not finished.

A fold is reused only by a run with the very same inputs - competition, recipe, params, seed, folds, data files and
the code of ``common/`` and ``competitions/`` - so a resumed run gives the CV an uninterrupted one would. Each fold is
one pickle under ``resume/<competition>/<code>-<key>/``, written atomically; the run removes its folder once written.
A command that trains several runs (``train.py --recipe all``, ``--seed 0,1,2``) also keeps the list of the runs it
has written (``Batch``), so the same command cut short goes on from the run it had not finished rather than training
the written ones again. Folders that other code made can never be reused, so a run of the same competition removes
them when it starts (``resume/`` does not grow with every change to the code) - unless a live process still uses
them: each run marks its folders (``common.io.mark_in_use``), so a run of edited code started beside a running one
leaves the running one's folds alone, and a run finishing beside another with the same inputs leaves their shared
folder to the other.
"""

import contextlib
import hashlib
import json
import logging
import pickle
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Any

from common import paths
from common.cv import FoldOutcome
from common.io import in_use_elsewhere, mark_in_use, own_mark, write_bytes_atomic, write_json_atomic
from common.provenance import code_sha256

log = logging.getLogger(__name__)
FOLD_FILES = "fold-*.pkl"  # one finished fold each, under resume/<competition>/<code>-<key>/


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """sha256 over the code that computes a CV (the scripts only pass it options): a fold made by other code is never
    reused. Taken once, as the process's modules were imported."""
    return code_sha256(("common", "competitions"))


class FoldFiles:
    """One CV's finished folds (the ``common.cv.FoldStore`` the runner hands to ``cross_validate``)."""

    def __init__(self, folder: Path, label: str):
        self.folder = folder
        self.label = label

    def _path(self, key: int | str) -> Path:
        return self.folder / f"fold-{key}.pkl"

    def load(self, key: int | str) -> FoldOutcome | None:
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            outcome = pickle.loads(path.read_bytes())
        except Exception as exc:  # a damaged file only costs the fold again
            log.warning("%s: saved fold %s is unreadable (%s); fitting it again", self.label, key, exc)
            return None
        if not isinstance(outcome, FoldOutcome):
            return None
        log.info("%s: fold %s taken from the finished folds kept in %s (same inputs, same code)", self.label, key,
                 self.folder)
        return outcome

    def save(self, key: int | str, outcome: FoldOutcome) -> None:
        write_bytes_atomic(self._path(key), pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL))


class Resume:
    """Hands out one ``FoldFiles`` per CV of a run (a stack: one per member) and removes them all when the run is
    written. As a context manager: finished when the block ends, left for the same command to go on from when it
    fails."""

    def __init__(self, competition: str):
        self.root = paths.resume_dir(competition)
        self.used: list[Path] = []
        self.code = code_fingerprint()[:12]
        self._drop_other_code()
        _unfinished.append(self)

    def _drop_other_code(self) -> None:
        """Remove kept folds that other code made: no run of this code can take them."""
        if not self.root.is_dir():
            return
        stale = [f for f in self.root.iterdir()
                 if f.is_dir() and not f.name.startswith(f"{self.code}-") and not in_use_elsewhere(f)]
        for folder in stale:
            shutil.rmtree(folder, ignore_errors=True)
        for batch in self.root.glob("batch-*.json"):  # the run lists of commands of other code
            if not batch.name.startswith(f"batch-{self.code}-"):
                batch.unlink(missing_ok=True)
        if stale:
            log.info("resume: removed %d folder(s) of finished folds that other code made (never reusable)", len(stale))

    def store(self, label: str, **inputs: Any) -> FoldFiles:
        material = json.dumps(inputs, sort_keys=True, default=str)  # the code is the folder's prefix
        folder = self.root / f"{self.code}-{hashlib.sha256(material.encode()).hexdigest()[:16]}"
        if folder not in self.used:
            self.used.append(folder)
            mark_in_use(folder)
        return FoldFiles(folder, label)

    def __enter__(self) -> "Resume":
        return self

    def __exit__(self, kind, exc, traceback) -> None:
        if kind is None:
            self.finish()
            return
        with contextlib.suppress(OSError):  # tidying up (a read-only disk) must not hide why the run stopped
            self.leave()

    def leave(self) -> None:
        """After a failure: the finished folds stay for the same command to go on from; this process's marks go, and
        so do its folders without a finished fold (a run stopped before its first fold left one, never taken)."""
        self._release(keep_finished=True)

    def finish(self) -> None:
        _unfinished.remove(self)
        self._release(keep_finished=False)

    def _release(self, keep_finished: bool) -> None:
        """This process's marks go, and its folders with them - except a folder a run with the same inputs beside
        this one still uses (its folds, its folder) and, with ``keep_finished``, one holding finished folds."""
        for folder in self.used:
            own_mark(folder).unlink(missing_ok=True)
            if not in_use_elsewhere(folder) and not (keep_finished and any(folder.glob(FOLD_FILES))):
                shutil.rmtree(folder, ignore_errors=True)
        _remove_empty(self.root, self.root.parent)


_unfinished: list[Resume] = []


def _remove_empty(*folders: Path) -> None:
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()  # only when empty: other runs' unfinished folds stay


class Batch:
    """The runs a several-run command has written, by job (``lgbm seed 0``), in one JSON file under ``resume/``
    named after the code and the command's inputs; removed once the command's last run is written. A run it lists is
    taken as it is by the same command started again (same code, recipes, seeds, params, folds)."""

    def __init__(self, competition: str, jobs: list[tuple[str, int]], **command: Any):
        material = json.dumps({"jobs": jobs, **command}, sort_keys=True, default=str)
        name = f"batch-{code_fingerprint()[:12]}-{hashlib.sha256(material.encode()).hexdigest()[:16]}.json"
        self.path = paths.resume_dir(competition) / name
        self.jobs = len(jobs)
        self.runs = self._read()
        _batches.append(self)

    def _read(self) -> dict[str, str]:
        try:
            runs = json.loads(self.path.read_text())
        except (OSError, ValueError):  # none yet; a damaged list only costs its runs again
            return {}
        return {str(k): str(v) for k, v in runs.items()} if isinstance(runs, dict) else {}

    def written(self, job: str) -> str | None:
        return self.runs.get(job)

    def add(self, job: str, run_id: str) -> None:
        self.runs[job] = run_id
        write_json_atomic(self.path, self.runs)

    def finish(self) -> None:
        _batches.remove(self)
        self.path.unlink(missing_ok=True)
        _remove_empty(self.path.parent, self.path.parent.parent)


_batches: list[Batch] = []


def batch_progress() -> str:
    """What an interrupted several-run command has written, for its interruption message ('' if nothing)."""
    return "".join(f"; {len(b.runs)} of the command's {b.jobs} runs {'is' if len(b.runs) == 1 else 'are'} written: "
                   f"the same command does not train {'it' if len(b.runs) == 1 else 'them'} again"
                   for b in _batches if b.runs)


def kept_folds() -> int:
    """How many finished folds this process's unfinished runs have kept (what an interruption message can promise)."""
    folders = {folder for run in _unfinished for folder in run.used}  # two runs of the same inputs share one
    return sum(len(list(folder.glob(FOLD_FILES))) for folder in folders if folder.is_dir())
