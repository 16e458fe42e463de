"""The thin layer that does a training run's I/O around the pure pieces: fetch -> load -> features -> folds ->
cross_validate -> submission -> run record. Scripts and the tuning layer call this; it never prints scores itself."""

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from common import data as data_layer
from common import importance, paths, predictions, submission
from common.competition import Competition, Data
from common.compute import barrier, peak_memory_bytes, reset_peak_memory, usable_cores, world
from common.cv import CVResult, cross_validate, predict_raw
from common.errors import KitError, UsageError
from common.io import OWNER, live_owners, mark_in_use, sweep_leftovers
from common.params import check_buildable, resolve
from common.provenance import environment
from common.resume import Resume
from common.runs import RunRecord, RunWriter
from common.splitters import Folds
from common.stacking import stack_cv

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """Everything a CV needs, loaded once (the tuning layer reuses it across trials)."""

    competition: Competition
    files: data_layer.DataFiles
    data: Data
    X: Any  # the model input: a feature frame, an array of images, a Panel of series
    X_test: Any
    folds: Folds


TRAINING = ".training"  # under the home folder: one mark per process fitting models here (common.io.mark_in_use)


@contextmanager
def training_here() -> Iterator[None]:
    """Mark this process as fitting models on this machine while the block runs, and warn when another already does:
    two side by side on a laptop's few cores each run several times slower (their threads fight; torch most), and a
    slow run should not be taken for a slow model. No warning when KIT_THREADS shares the cores out already (the
    tuning layer's workers set it)."""
    folder = paths.home() / TRAINING
    others = live_owners(folder.glob(f".tmp-*{OWNER}"))
    if others and not os.environ.get("KIT_THREADS"):
        log.warning("%d other training process(es) on this machine (pid %s) share its %d CPU cores with this one: "
                    "each runs slower (torch several times) - let one finish first, or give each a share with "
                    "KIT_THREADS", len(others), ", ".join(map(str, sorted(others))), usable_cores())
    mark = mark_in_use(folder)
    try:
        yield
    finally:
        mark.unlink(missing_ok=True)
        sweep_leftovers(folder)  # the marks of killed processes
        with contextlib.suppress(OSError):
            folder.rmdir()  # only when no other process is marked


def prepare(comp: Competition, n_folds: int | None = None, data_dir: str | Path | None = None,
            used_by: dict[str, Any] | None = None) -> Prepared:
    """Load and check the files, build features and the persisted folds (``n_folds``: the competition's default
    when None; ``used_by``: a run's data record, whose files are preferred, as ``data.load`` says)."""
    n_folds = n_folds or comp.default_folds
    files, dataset = data_layer.load(comp, data_dir, check=lambda d: comp.folds.check_persisted(d, n_folds, comp.name),
                                     used_by=used_by)
    log.info("%s: files from %s (%s)", comp.name, files.folder, files.source)
    X, X_test = comp.features(dataset)
    folds = comp.folds.split(dataset, n_folds, comp.name)
    log.info("%s: %d train and %d test %s, %d folds (%s)", comp.name, len(X), len(X_test),
             "rows" if folds.fold is not None else "series", folds.n_splits, folds.hash)
    return Prepared(comp, files, dataset, X, X_test, folds)


def run_cv(prep: Prepared, recipe_name: str, params: dict[str, Any], seed: int, progress: bool = True,
           on_fold=None, with_test: bool = True, folds_scored: int | None = None, explain: bool = False,
           refit: bool = False, resume: Resume | None = None) -> CVResult:
    """``folds_scored``: how many folds to score (None: the recipe's own default, then all). ``explain``: measure
    what each fold model relied on (common.importance; a stack's meta-model: its members). ``refit``: the test
    prediction from a model refitted on all of train even where the recipe does not ask for it (a stack with
    ``refit`` passes it to its members). ``resume``: keep finished folds (of every member) there, and take those an
    interrupted run with the same inputs left."""
    recipe = prep.competition.recipe(recipe_name)
    comp = prep.competition
    explainer = importance.explainer(comp.score, comp.metric.gain, predict_raw,
                                     comp.importance_groups) if explain else None
    folds_scored = folds_scored or recipe.folds_scored
    params = resolve(prep.competition, recipe_name, params)
    refit = recipe.refit or refit
    if recipe.members:
        members = {}
        for name in recipe.members:
            log.info("stack member %s", name)
            members[name] = run_cv(prep, name, params["members"][name], seed, progress, with_test=with_test,
                                   refit=refit, resume=resume)
            log.info("stack member %s: %s %.5f ± %.5f", name, prep.competition.metric.name, members[name].mean,
                     members[name].std)
        meta_params = params.get("meta", {})
        passthrough = list(recipe.passthrough)
        return stack_cv(members, lambda: recipe.make_model(meta_params, seed), prep.data.y, prep.folds,
                        prep.competition.score, progress=progress, on_fold=on_fold, explain=explainer,
                        features=prep.X[passthrough] if passthrough else None,
                        features_test=prep.X_test[passthrough] if passthrough and with_test else None)
    store = None if resume is None else resume.store(
        f"{comp.name}/{recipe_name}", recipe=recipe_name, params=params, seed=seed, folds=prep.folds.hash,
        data=prep.files.sha256, with_test=with_test, folds_scored=folds_scored, explain=explain, refit=refit)
    return cross_validate(lambda: recipe.make_model(params, seed), prep.X, prep.data.y, prep.folds,
                          prep.competition.score, prep.X_test if with_test else None, on_fold=on_fold,
                          progress=progress, scored=prep.folds.scored(folds_scored), refit=refit,
                          explain=explainer, store=store)


def validated(oof: np.ndarray, cells: bool) -> np.ndarray:
    """Where the out-of-fold container holds a prediction: the rows of the scored folds (all of a row's class
    probabilities), or with ``cells`` (series x days) the days some backtest window validated."""
    missing = np.isnan(oof)
    if cells or oof.ndim == 1:
        return ~missing
    return ~missing.all(axis=tuple(range(1, oof.ndim)))


def oof_score(comp: Competition, prep: Prepared, result: CVResult) -> float:
    """The metric over every validated prediction at once (backtests: only the days some window validated)."""
    scored = validated(result.oof, prep.folds.fold is None)
    if prep.folds.fold is None and (days := _one_block_of_days(scored)) is not None:
        # backtest windows end to end: the block as views (the cells picked one by one: 0.5 GB at full size)
        return comp.score(prep.data.y[:, days], result.oof[:, days])
    return comp.score(prep.data.y[scored], result.oof[scored])


def _one_block_of_days(scored: np.ndarray) -> slice | None:
    """The days of a series x days mask as one slice, where every series is scored on each of them and on no
    other day."""
    days = np.flatnonzero(scored.any(axis=0))
    if not len(days) or days[-1] - days[0] + 1 != len(days):
        return None
    block = slice(int(days[0]), int(days[-1]) + 1)
    return block if scored[:, block].all() else None


def train(comp: Competition, recipe_name: str = "default", seed: int = 0, n_folds: int | None = None,
          data_dir: str | Path | None = None, params: dict[str, Any] | None = None,
          params_source: dict[str, Any] | None = None, progress: bool = True,
          folds_scored: int | None = None, used_by: dict[str, Any] | None = None
          ) -> tuple[RunRecord | None, Path | None]:
    """Cross-validate a recipe, write a complete run folder and publish its submission; returns (record, folder).
    ``used_by``: the data record of a run this one repeats, whose files are preferred (``prepare``).

    Under torchrun only rank 0 writes and returns the record; the other processes return (None, None).
    """
    started = time.perf_counter()
    reset_peak_memory()  # the record's peak is this run's, not an earlier run's of the same command
    n_folds = n_folds or comp.default_folds
    changes = params
    params = resolve(comp, recipe_name, changes)
    check_buildable(comp, recipe_name, params, seed)
    rank, processes = world()
    if rank > 0:  # another process of a torchrun job: train its shard in step with rank 0, write nothing
        barrier()  # rank 0 has checked and cached the files and made the folds
        run_cv(prepare(comp, n_folds, data_dir, used_by), recipe_name, params, seed, progress=False, with_test=False,
               folds_scored=folds_scored)
        return None, None
    prep = prepare(comp, n_folds, data_dir, used_by)
    barrier()
    config = {"competition": comp.name, "recipe": recipe_name, "params": params, "seed": seed, "n_folds": n_folds}
    # torchrun: every process must fit every fold. The run's folds go once it is written, whatever happens to the
    # copy below; on a failure the finished ones stay for the same command.
    keeping = Resume(comp.name) if processes == 1 else contextlib.nullcontext()
    with keeping as resume, training_here(), RunWriter(comp.name, recipe_name, config) as run:
        log.info("cross-validating %s/%s with seed %d", comp.name, recipe_name, seed)
        try:
            result = run_cv(prep, recipe_name, params, seed, progress=progress, folds_scored=folds_scored,
                            explain=True, resume=resume)
        except Exception as exc:
            # the machine's refusals (memory; the OS, which gives an errno) keep their own one line and exit code
            refused = isinstance(exc, MemoryError) or (isinstance(exc, OSError) and exc.errno is not None)
            if not changes or refused or isinstance(exc, KitError):
                raise
            # Values the model only rejects when fitting (LightGBM checks num_leaves > 1 in fit): a usage error.
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise UsageError(f"{comp.name}/{recipe_name} failed with the params you gave "
                             f"({', '.join(sorted(changes))}): {type(exc).__name__}: {first}") from exc
        record = finish_run(run, prep, recipe_name, result, params=params,
                            params_source=params_source or {"kind": "recipe"}, seed=seed, started=started,
                            processes=processes)
    submission.publish(record.folder / "submission.csv", comp.name)
    return record, record.path


def finish_run(run: RunWriter, prep: Prepared, recipe_name: str, result: CVResult, *, params: dict[str, Any],
               params_source: dict[str, Any], seed: int, started: float, processes: int = 1,
               **fields: Any) -> RunRecord:
    """Check a CV result, write its predictions, submission and record into the run folder and move it into place
    (training runs and ensembles alike). ``fields``: more RunRecord fields (an ensemble's members)."""
    comp = prep.competition
    for k, score, secs in zip(result.fold_ids, result.fold_scores, result.fold_seconds, strict=True):
        log.info("fold %d: %s %.5f (%.1fs)", k, comp.metric.name, score, secs)
    submission.check_finite(result.oof[validated(result.oof, prep.folds.fold is None)], "out-of-fold predictions")
    if result.test_pred is None:
        raise ValueError("the CV result holds no test prediction to submit")
    submission.check_finite(result.test_pred)
    sub = comp.to_submission(prep.data, result.test_pred)
    # A stack's files also keep each member's predictions, so a blend can be studied without re-running it.
    run.write_frame("oof.parquet", predictions.oof_frame(prep.data, prep.folds, result, prep.X))
    run.write_frame("test_pred.parquet", predictions.test_frame(prep.data, result, prep.X_test))
    sub_path, sub_sha = submission.write_validated(sub, prep.data.sample_submission, comp.submission,
                                                   run.path("submission.csv"))
    record = RunRecord(
        **run.header(),
        competition=comp.name,
        slug=comp.slug,
        recipe=recipe_name,
        params=params,
        params_source=params_source,
        seed=seed,
        metric={"name": comp.metric.name, "direction": comp.metric.direction},
        cv={
            "mean": result.mean,
            "std": result.std,
            "fold_scores": result.fold_scores,
            "folds_scored": len(result.fold_scores),
            "oof_score": oof_score(comp, prep, result),
            "members": {name: {"mean": r.mean, "std": r.std, "fold_scores": r.fold_scores}
                        for name, r in result.members.items()},
        },
        folds={"n_splits": prep.folds.n_splits, **prep.folds.spec, "hash": prep.folds.hash,
               "path": str(prep.folds.path)},
        data={"source": prep.files.source, "folder": str(Path(prep.files.folder).resolve()),
              "sha256": prep.files.sha256},
        submission={"file": sub_path.name, "rows": len(sub), "sha256": sub_sha},
        seconds={"total": round(time.perf_counter() - started, 3),
                 "folds": [round(s, 3) for s in result.fold_seconds]},
        memory={} if (peak := peak_memory_bytes()) is None else {"peak_rss_mb": round(peak / 1e6, 1)},
        importance=importance.summarise(result.importance),
        environment={**environment(run.code), "processes": processes},
        **fields,
    )
    record.path = run.finish(record)
    return record
