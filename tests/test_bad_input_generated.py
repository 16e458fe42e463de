"""Generated bad input: many damaged copies of each competition's real files (tests/damage.py, fixed seed), each run
through the loader and a quick recipe's train exactly as ``scripts/train.py`` runs it.

For every copy the outcome must be either a clean error - one line, a documented exit code, and the cache, the runs
and the published submission exactly as they were, with no temp file left - or a correct run whose submission
validates against the sample. Never a traceback. The outcome counts are printed (BENCHMARKS.md quotes them).
"""

import contextlib
import io
import json
import zipfile
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

import competitions
from common import data, runner, submission
from common.cli import handle_errors

from damage import copies

DOCUMENTED = {2, 3, 5, 7}  # usage, data, submission, file system
# competition -> (damaged copies, the quick recipe each trains, folds). Web Traffic's `median` forecasts its 4 519
# pages in ~1 s (its backtest needs 3 windows); Digit Recognizer's 128 MB of files are damaged by hand in
# test_bad_input.py instead (a copy here would cost ~30 s).
COPIES = {"titanic": (60, "fast", 2), "house-prices": (30, "fast", 2), "disaster-tweets": (30, "fast", 2),
          "web-traffic": (14, "median", 3)}
# changes to the quick recipe: Disaster Tweets' `fast` without its F1 threshold (an inner CV of 5 fits more per fold)
PARAMS = {"disaster-tweets": {"threshold": False}}


def state(home: Path, slug: str, name: str) -> dict[str, bytes]:
    """What must not change when a run fails: cache files, every run's record and submission, the published file."""
    paths = [*sorted((home / "data" / slug).glob("*")), *sorted((home / "runs" / name).glob("*/run.json")),
             *sorted((home / "runs" / name).glob("*/submission.csv")), home / "submissions" / f"{name}.csv"]
    return {str(p.relative_to(home)): p.read_bytes() for p in paths if p.is_file()}


def leftovers(home: Path) -> list[Path]:
    return [p for p in home.rglob(".*") if "tmp-" in p.name]


def deliver(copy, mirror: Path, slug: str) -> None:
    import shutil

    if mirror.exists():
        shutil.rmtree(mirror)
    mirror.mkdir(parents=True)
    if copy.as_zip:
        from damage import zip_of

        (mirror / f"{slug}.zip").write_bytes(copy.zip_bytes if copy.zip_bytes is not None else zip_of(copy.files))
    else:
        (mirror / slug).mkdir()
        for file_name, blob in copy.files.items():
            (mirror / slug / file_name).write_bytes(blob)


@pytest.mark.parametrize("name", list(COPIES))
def test_damaged_copies_fail_cleanly_or_train_correctly(name, shared_kaggle, tmp_path, kit_home, capsys):
    comp = competitions.get(name)
    n_copies, recipe, n_folds = COPIES[name]
    good = tmp_path / "good"
    good.mkdir()
    from damage import zip_of

    source = shared_kaggle / comp.slug
    if not any(source.glob("*.csv")):  # the mirror holds the competition as one zip: damage its files
        source = tmp_path / "source"
        with zipfile.ZipFile(shared_kaggle / comp.slug / f"{comp.slug}.zip") as zf:
            zf.extractall(source)
    (good / f"{comp.slug}.zip").write_bytes(zip_of({p.name: p.read_bytes() for p in source.iterdir()}))
    params = PARAMS.get(name)
    # a good cache, run and submission
    runner.train(comp, recipe, n_folds=n_folds, data_dir=good, progress=False, params=params)
    sample = data.load(comp, good)[1].sample_submission

    outcomes: Counter = Counter()
    problems = []
    mirror = tmp_path / "mirror"
    for i, copy in enumerate(copies(source, n_copies, seed=10 + len(name))):
        deliver(copy, mirror, comp.slug)
        before = state(kit_home, comp.slug, name)
        runs_before = {p.name for p in (kit_home / "runs" / name).iterdir()}
        err = io.StringIO()

        def train() -> None:  # as scripts/train.py does it
            runner.train(comp, recipe, n_folds=n_folds, data_dir=mirror, progress=False, params=params)

        try:
            with contextlib.redirect_stderr(err):
                code = handle_errors(train)
        except Exception as exc:  # noqa: BLE001 - the point: anything escaping is a traceback for the user
            problems.append(f"#{i} {copy.kind}: traceback {type(exc).__name__}: {exc}")
            outcomes["traceback"] += 1
            continue
        lines = [line for line in err.getvalue().splitlines() if line.startswith("error:")]
        if code == 0:
            outcomes["trained"] += 1
            new = {p.name for p in (kit_home / "runs" / name).iterdir()} - runs_before
            if len(new) != 1:
                problems.append(f"#{i} {copy.kind}: exit 0 but {len(new)} new run folders")
                continue
            record = json.loads((kit_home / "runs" / name / new.pop() / "run.json").read_text())
            published = pd.read_csv(kit_home / "submissions" / f"{name}.csv")
            own_sample = pd.read_csv(io.BytesIO(copy.files[comp.submission.sample_file]))  # rows may be shuffled
            try:
                submission.validate(published, own_sample, comp.submission)
                assert set(published[comp.submission.id_col]) == set(sample[comp.submission.id_col]), "other ids"
            except Exception as exc:  # noqa: BLE001
                problems.append(f"#{i} {copy.kind}: trained, but its submission is invalid: {exc}")
            if not all(isinstance(s, float) for s in record["cv"]["fold_scores"]):
                problems.append(f"#{i} {copy.kind}: trained, but fold scores are {record['cv']['fold_scores']}")
        else:
            outcomes[f"exit {code}"] += 1
            if code not in DOCUMENTED or len(lines) != 1:
                problems.append(f"#{i} {copy.kind}: exit {code} with {len(lines)} error lines: {err.getvalue()!r}")
            if state(kit_home, comp.slug, name) != before:
                changed = sorted(k for k in {*before, *state(kit_home, comp.slug, name)}
                                 if before.get(k) != state(kit_home, comp.slug, name).get(k))
                problems.append(f"#{i} {copy.kind}: failed (exit {code}: {lines}) but changed {changed}")
        if leftovers(kit_home):
            problems.append(f"#{i} {copy.kind}: left temp files {leftovers(kit_home)}")
    with capsys.disabled():
        print(f"\n{name}: {sum(outcomes.values())} damaged copies: {dict(sorted(outcomes.items()))}")
    assert not problems, "\n".join(problems)
