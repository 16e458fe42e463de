"""Which run folders to remove when runs pile up, and removing them without leaving half a folder.

Runs are never overwritten, so they accumulate: a full-size Web Traffic run holds hundreds of MB of forecasts.
What is kept is what a Kaggle user comes back to - the best runs by CV on each fold assignment (CV means on different
folds are not comparable, so each assignment keeps its own best), every run that was submitted to Kaggle (its
leaderboard score is what the report sets beside the CV) and the newest run (likely the one about to be submitted).
An ensemble run keeps its own predictions, so it outlives the members removed here.
"""

import logging
import os
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from common import paths
from common.competition import Competition
from common.data import waiting_for_download
from common.io import held, in_use_elsewhere, sweep_leftovers, temp_tag
from common.metrics import Metric
from common.resume import FOLD_FILES
from common.runs import RECORDS_LOCK, RunRecord, rank_by_cv

log = logging.getLogger(__name__)


@dataclass
class Plan:
    keep: dict[str, list[str]] = field(default_factory=dict)  # run id -> why it stays
    remove: list[RunRecord] = field(default_factory=list)  # best CV first

    def reasons(self, run_id: str) -> str:
        return "; ".join(self.keep.get(run_id, []))


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def size_text(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size / 1e3:.0f} KB"


def plan(records: list[RunRecord], metric: Metric, best: int) -> Plan:
    """Keep the ``best`` runs by CV of each fold assignment, the submitted runs and the newest; the rest go."""
    out = Plan()

    def keep(record: RunRecord, why: str) -> None:
        out.keep.setdefault(record.run_id, []).append(why)

    by_folds: dict[str, list[RunRecord]] = defaultdict(list)
    for record in records:
        by_folds[str(record.folds.get("hash"))].append(record)
    for group in by_folds.values():
        for place, record in enumerate(rank_by_cv(group, metric)[:best], start=1):
            keep(record, f"#{place} by CV on its folds")
    for record in records:
        if record.kaggle_submissions:
            keep(record, "submitted to Kaggle")
    if records:
        keep(max(records, key=lambda r: (r.started, r.run_id)), "the newest run")
    out.remove = [r for r in metric.rank(records, lambda r: r.cv["mean"]) if r.run_id not in out.keep]
    return out


def remove(records: list[RunRecord]) -> int:
    """Remove these run folders; returns the bytes freed. Each folder is first renamed to a temp name of this
    process, so a run is either all there or gone (what a kill leaves is swept by the next run), under the lock
    that submit and sync take to update records."""
    freed = 0
    for parent, group in _by_parent(records).items():
        sweep_leftovers(parent)  # what an earlier removal cut short left behind
        with held(parent / RECORDS_LOCK, "removing runs"):
            for record in group:
                size = folder_bytes(record.folder)
                doomed = parent / f".{temp_tag()}pruned-{record.run_id}"
                os.rename(record.folder, doomed)
                shutil.rmtree(doomed)
                freed += size
                log.info("removed %s (%s)", record.run_id, size_text(size))
    return freed


def download_note(comp: Competition) -> str | None:
    """What the competition's Kaggle download folder still holds, for the user freeing space: a part download kept
    for the next command to resume, or a whole one kept for a competition unpacked from the same file (Web
    Traffic's other stage) that has not run yet. None when there is none."""
    folder = paths.download_dir(comp.slug)
    files = [p for p in folder.glob("*") if p.is_file()] if folder.is_dir() else []
    if not files:
        return None
    size = size_text(sum(p.stat().st_size for p in files))
    if paths.part_download(folder):
        why = "a download cut short, which the next command that needs the files resumes"
    else:
        waiting = waiting_for_download(comp, itself=True)
        why = (f"the whole download, kept until {' and '.join(waiting)} unpacks it" if waiting
               else "a whole download, which the next command that needs the files unpacks")
    return f"also: {paths.shown(folder)}/ holds {size}: {why} (delete the folder to free the space)"


def resume_note(comp: Competition) -> str | None:
    """What ``resume/`` keeps of the competition's interrupted runs, for the user freeing space: their finished folds
    wait for the same command, but one never run again keeps them until the code changes (a full-size Web Traffic
    fold holds tens of MB). Folders a live process is using are its, not said. None when there is nothing."""
    root = paths.resume_dir(comp.name)
    folders = [f for f in root.iterdir() if f.is_dir() and not in_use_elsewhere(f)] if root.is_dir() else []
    folds = [fold for folder in folders for fold in folder.glob(FOLD_FILES)]
    if not folds:
        return None
    return (f"also: {paths.shown(root)}/ holds {len(folds)} finished fold(s) of interrupted runs, "
            f"{size_text(sum(fold.stat().st_size for fold in folds))}: the same command goes on from them (delete the "
            "folder to free the space; it only costs the refits)")


def _by_parent(records: list[RunRecord]) -> dict[Path, list[RunRecord]]:
    groups: dict[Path, list[RunRecord]] = defaultdict(list)
    for record in records:
        groups[record.folder.parent].append(record)
    return groups
