"""A run's life on Kaggle: pick the run to submit, prove its file is the one that was validated, upload it with a
message naming the run and its CV, record the submission reference and, later, its leaderboard scores."""

import logging
import tempfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from common import kaggle_api, paths, submission
from common.competition import Competition
from common.data import load_sample, sha256_file
from common.errors import FileSystemError, KaggleApiError, SubmissionError, UsageError, describe_os_error
from common.io import held
from common.runs import RunRecord, best_run, best_unsent, find_run, load_runs, update_record

log = logging.getLogger(__name__)
DONE = ("COMPLETE", "ERROR")
WAIT_NOTE_SECONDS = 60  # while waiting for a score, a line when the state changes or this often
# Kaggle unpacks a zipped submission itself (its maintainers advise zipping large files: a competition may cap the
# upload size). Web Traffic's full-size CSV, whose ids are random hex, zips to ~57 % in ~5 s (BENCHMARKS.md).
ZIP_ABOVE = 1_000_000
ZipMode = Literal["auto", "always", "never"]


def pick_run(comp: Competition, run_id: str | None = None) -> RunRecord:
    runs = load_runs(comp.name)
    if not runs:
        raise UsageError(f"no runs of {comp.name} yet; run: python scripts/train.py {comp.name}")
    if run_id:
        return find_run(runs, run_id, comp.name)
    best = best_run(runs, comp.metric)
    if best is None:
        raise UsageError(f"no run of {comp.name} has a CV score; run: python scripts/train.py {comp.name}")
    return best


def tuned_note(comp: Competition, run: RunRecord) -> str | None:
    """For a run whose params won a tuning study: its CV is the best of many tries on the same folds, so it is
    optimistic beside untuned runs; says how to score the tuned params on folds the study never saw."""
    if not run.tuned:
        return None
    return (f"run {run.run_id}'s params won a tuning study on these folds, so its CV is the best of many tries there "
            f"and optimistic beside untuned runs; python scripts/compare.py {comp.name} --recipes {run.recipe} "
            f"--tuned scores them on fold assignments the study never saw")


def message_for(run: RunRecord, note: str | None = None) -> str:
    """Kaggle's description of the submission: the run id first (``--sync`` finds the run by it), recipe, CV and
    seed, then the user's own note."""
    message = f"{run.run_id} {run.recipe} CV {run.metric['name']} {run.cv_text(sep='±')} seed {run.seed}"
    if note is None:
        return message
    if not note.strip() or any(c in note for c in "\r\n"):
        raise UsageError("--note must be one line of text")
    return f"{message} - {note.strip()}"


def verified_submission(comp: Competition, run: RunRecord, data_dir: str | None = None) -> tuple[Path, pd.DataFrame]:
    """The run's submission.csv and its rows, refused if it changed since the run validated it or no longer
    validates."""
    path = run.path / run.submission["file"]
    if not path.is_file():
        raise SubmissionError(f"{path} is missing; the run cannot be submitted")
    if sha256_file(path) != run.submission["sha256"]:
        raise SubmissionError(f"{path} was edited after the run validated it (sha256 differs); refusing to submit "
                              "it - train again to get a fresh one")
    sample = load_sample(comp, data_dir, used_by=run.data)
    rows = pd.read_csv(path)
    submission.validate(rows, sample, comp.submission)
    return path, rows


def difference_note(comp: Competition, run: RunRecord, rows: pd.DataFrame) -> str | None:
    """How far this file is from the best-scoring file on Kaggle: the rows whose prediction changed and, for
    numbers, the metric between the two files. A file that changes a handful of rows can only move the score that
    much, and it spends one of the day's few submissions. None when no other run has a score (or its file is gone
    or was made for other test rows)."""
    found = best_on_kaggle(comp, run)
    if found is None:
        return None
    best, score = found
    spec = comp.submission
    try:
        other = pd.read_csv(best.path / best.submission["file"], usecols=[spec.id_col, spec.value_col])
    except (OSError, ValueError, KeyError):  # pruned by hand, damaged: the note is only a help
        return None
    if not other[spec.id_col].equals(rows[spec.id_col]):
        return None
    mine, theirs = rows[spec.value_col].to_numpy(), other[spec.value_col].to_numpy()
    changed = int((mine != theirs).sum()) if spec.dtype == "int" else int((~np.isclose(mine, theirs)).sum())
    said = (f"against run {best.run_id}, the best on Kaggle (public {comp.metric.name} {score}, CV "
            f"{best.cv_text()}), {changed:,} of {len(rows):,} predictions differ")
    if spec.dtype != "int" and changed:
        said += f" ({comp.metric.name} {comp.metric(theirs, mine):.5f} between the two files)"
    return said


def best_on_kaggle(comp: Competition, besides: RunRecord) -> tuple[RunRecord, float] | None:
    """The run whose file has the best public score on Kaggle, other than ``besides`` and runs with its file."""
    scored = [(r, score) for r in load_runs(comp.name) if (score := r.leaderboard()) is not None
              and r.run_id != besides.run_id and r.submission.get("sha256") != besides.submission.get("sha256")]
    return comp.metric.rank(scored, lambda pair: pair[1])[0] if scored else None


def against_best(comp: Competition, run: RunRecord, score: float) -> str | None:
    """The new public score beside the best the user's other files have on Kaggle: a new best, or by how much it
    falls short (the leaderboard shows the best). None when no other file has a score."""
    found = best_on_kaggle(comp, run)
    if found is None:
        return None
    best, before = found
    gain = comp.metric.gain(score, before)
    if gain > 0:
        return f"a new best on Kaggle: {gain:.5f} better than run {best.run_id} ({before})"
    if gain == 0:
        return f"the same public score as run {best.run_id}, your best on Kaggle"
    return f"{-gain:.5f} short of your best on Kaggle, run {best.run_id} ({before}, CV {best.cv_text()})"


def earlier_submission(comp: Competition, run: RunRecord) -> str | None:
    """In words, the newest submission Kaggle did not reject of this run's file - by this run, or by another run whose
    submission.csv has the same sha256 (the same recipe and seed trained again writes the same file); None if none."""
    digest = run.submission.get("sha256")
    sent = [(other, entry) for other in load_runs(comp.name) if digest and other.submission.get("sha256") == digest
            for entry in other.accepted_submissions]
    if not sent:
        return None
    other, entry = max(sent, key=lambda found: found[1]["ref"])
    what = "this run's file" if other.run_id == run.run_id else f"the same file (run {other.run_id}, same sha256)"
    score = entry.get("public_score")
    state = (f"public {comp.metric.name} {score}" if score is not None
             else f"not scored yet: python scripts/leaderboard.py {comp.name} --sync")
    return (f"{what} was already submitted to Kaggle on {entry.get('submitted') or 'an earlier day'} "
            f"(ref {entry['ref']}, {state})")


def refuse_resubmission(comp: Competition, run: RunRecord, picked: bool = False) -> None:
    """Kaggle scores a file, not a run: sending a file it has already scored (or is scoring) spends one of the
    day's few submissions on a score the user has, so it takes --again. ``picked``: the run was chosen as the best by
    CV, so the error names the best run whose file Kaggle does not have yet."""
    earlier = earlier_submission(comp, run)
    if earlier is None:
        return
    instead = ""
    if picked:
        unsent = best_unsent(load_runs(comp.name), comp.metric)
        if unsent is not None:
            instead = (f"; the best run by CV whose file Kaggle does not have is {unsent.run_id} ({unsent.recipe}, "
                       f"CV {unsent.cv_text()}): --run {unsent.run_id}")
    raise UsageError(f"{earlier}; the same file gets the same score, so sending it again only spends one of "
                     f"today's submissions - pass --again to send it anyway{instead}")


@contextmanager
def one_submit_at_a_time(comp: Competition) -> Iterator[None]:
    """Two submits of one competition at once (two terminals, a loop) would both find the file unsent and both send
    it, spending two of the day's submissions on one score: the second waits, then finds the first one's record."""
    folder = paths.runs_dir(comp.name)
    folder.mkdir(parents=True, exist_ok=True)
    with held(folder / ".submit.flock", "submitting",
              waiting=f"another submit.py {comp.name} is sending a file; waiting until it has"):
        yield


def refuse_unrecorded(comp: Competition, run: RunRecord) -> int:
    """A submit stopped between Kaggle's answer and the record's update (``kill -9``, a crash) left Kaggle with this
    run's file and the record without it, so ``refuse_resubmission`` cannot see it. Kaggle's list names the run (its
    id starts every description): what it holds of this run is recorded, and refused as any earlier submission.
    Returns the newest ref listed: the floor of the upload's retry check (``kaggle_api.submit``), with no second
    list."""
    remote = kaggle_api.list_submissions(comp.slug)
    recorded = {e["ref"] for e in run.kaggle_submissions}
    if any(ref not in recorded for ref in _matching(run, remote)):
        log.info("Kaggle has a submission of run %s that its record lacks; recording it", run.run_id)
        refuse_resubmission(comp, apply_scores(run, remote))
    return max((s["ref"] for s in remote), default=0)


def zips(path: Path, mode: ZipMode = "auto") -> bool:
    """Whether the upload of ``path`` goes zipped: always, never, or (auto) when the file is over ZIP_ABOVE."""
    return mode == "always" or (mode == "auto" and path.stat().st_size > ZIP_ABOVE)


@contextmanager
def upload_form(path: Path, mode: ZipMode = "auto") -> Iterator[Path]:
    """The file to upload: ``path`` itself, or a zip holding it, made in a temp folder that is removed afterwards
    (the run's folder is never touched: its submission.csv keeps the sha256 the record holds)."""
    if not zips(path, mode):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="kit-upload-") as tmp:
        packed = Path(tmp) / f"{path.stem}.zip"
        with zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
            zf.write(path, path.name)
        log.info("zipped %s for the upload: %.1f MB -> %.1f MB", path.name, path.stat().st_size / 1e6,
                 packed.stat().st_size / 1e6)
        yield packed


def submissions_left(comp: Competition) -> int | None:
    """How many submissions Kaggle still allows today (None: it does not say); none left is refused before any
    upload - Web Traffic's file is a few hundred MB to send for a refusal."""
    limits = kaggle_api.submission_limits(comp.slug)
    if limits is None or limits["left"] > 0:
        return None if limits is None else limits["left"]
    if limits["by_total"]:
        raise KaggleApiError(f"Kaggle allows no more submissions to {comp.slug}: its lifetime cap is reached "
                             f"({limits['total']} made) - nothing was sent")
    now = datetime.now(UTC)
    wait = int((now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1) - now).total_seconds())
    raise KaggleApiError(f"no submissions to {comp.slug} left today ({limits['today']} made since 00:00 UTC); Kaggle "
                         f"allows more at 00:00 UTC, in {wait // 3600} h {wait % 3600 // 60} min - nothing was sent")


def submit_run(comp: Competition, run: RunRecord, path: Path, zip_mode: ZipMode = "auto",
               message: str | None = None, floor: int | None = None) -> dict[str, Any]:
    """Upload the run's file and record the submission. ``floor``: the newest ref listed just before, if known."""
    message = message or message_for(run)
    with upload_form(path, zip_mode) as upload:
        ref = kaggle_api.submit(comp.slug, upload, message, floor)
        sent = upload.name
    entry = {"ref": ref, "message": message, "submitted": datetime.now(UTC).isoformat(timespec="seconds"),
             "status": "PENDING", "public_score": None, "private_score": None, "uploaded": sent}
    try:
        update_record(run.folder, lambda record: {"kaggle_submissions": [*record.kaggle_submissions, entry]})
    except OSError as exc:  # Kaggle has the file: a plain "run it again" must not read as "it was not sent"
        raise FileSystemError(f"Kaggle has the submission (ref {ref}), but its record was not written: "
                              f"{describe_os_error(exc)}; the same command then records it without sending it "
                              f"again, or python scripts/leaderboard.py {comp.name} --sync with its score") from exc
    return entry


def _matching(run: RunRecord, remote: list[dict]) -> dict[int, dict]:
    """Remote submissions of this run: by recorded ref, or by the run id in the message."""
    refs = {s["ref"] for s in run.kaggle_submissions}
    return {s["ref"]: s for s in remote if s["ref"] in refs or s["description"].startswith(run.run_id + " ")}


def apply_scores(run: RunRecord, remote: list[dict]) -> RunRecord:
    """Fill in status and scores of this run's submissions from Kaggle's list; returns the updated record.
    The entries are those on disk when the lock is held: ``run`` may predate the submission being scored (whose local
    entry must be kept)."""
    def scored(record: RunRecord) -> dict[str, Any]:
        entries = {e["ref"]: dict(e) for e in record.kaggle_submissions}
        for ref, s in _matching(record, remote).items():
            entry = entries.setdefault(ref, {"ref": ref, "message": s["description"], "submitted": s["date"]})
            entry.update({"status": s["status"], "public_score": s["public_score"],
                          "private_score": s["private_score"], "error": s.get("error")})
        return {"kaggle_submissions": sorted(entries.values(), key=lambda e: e["ref"])}

    return update_record(run.folder, scored)


def wait_for_score(comp: Competition, run: RunRecord, ref: int, timeout: float = 600,
                   poll: float = 10) -> dict[str, Any]:
    started = time.time()
    deadline, said, said_at = started + timeout, "", 0.0
    while True:
        remote = kaggle_api.list_submissions(comp.slug)  # the newest page: it was just made
        mine = next((s for s in remote if s["ref"] == ref), None)
        if mine is not None and mine["status"] in DONE:
            apply_scores(run, remote)
            if mine["status"] == "ERROR":
                raise SubmissionError(f"Kaggle rejected submission {ref}: {mine.get('error') or 'no reason given'}")
            return mine
        if time.time() > deadline:
            raise KaggleApiError(f"submission {ref} not scored after {timeout:.0f}s; check later with "
                                 f"python scripts/leaderboard.py {comp.name} --sync")
        state = mine["status"] if mine else "not listed yet"
        if state != said or time.time() - said_at >= WAIT_NOTE_SECONDS:  # a change, or a minute: not every poll
            log.info("submission %d: %s after %.0fs; polling every %gs, at most %gs", ref, state,
                     time.time() - started, poll, timeout)
            said, said_at = state, time.time()
        time.sleep(poll)


def sync(comp: Competition) -> tuple[int, list[str]]:
    """Read the user's submissions back from Kaggle and fill in scores of the runs that made them (every recorded
    one: a private score appears when the competition ends). Returns how many runs were updated, and a line for each
    submission Kaggle scored or rejected since the records last said (a submit with --no-wait, a wait that ran
    out)."""
    runs = load_runs(comp.name)
    remote = kaggle_api.list_submissions(comp.slug, refs={e["ref"] for r in runs for e in r.kaggle_submissions})
    updated, news = 0, []
    for run in runs:
        if not _matching(run, remote):
            continue
        before = {e["ref"]: e.get("status") for e in run.kaggle_submissions}
        after = apply_scores(run, remote)
        updated += 1
        for entry in after.kaggle_submissions:
            if entry.get("status") in DONE and before.get(entry["ref"]) not in DONE:
                news.append(_outcome(comp, after, entry))
    return updated, news


def _outcome(comp: Competition, run: RunRecord, entry: dict[str, Any]) -> str:
    if entry.get("status") == "ERROR":
        return f"run {run.run_id} ({run.recipe}): rejected by Kaggle: {entry.get('error') or 'no reason given'}"
    private = "" if entry.get("private_score") is None else f", private {entry['private_score']}"
    return (f"run {run.run_id} ({run.recipe}): public {comp.metric.name} {entry.get('public_score')}{private} "
            f"(CV {run.cv_text()})")
