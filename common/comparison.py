"""Recipes compared on repeated CV (``scripts/compare.py``): each scored on the same fold assignments - the
competition's splitter re-run with other seeds - for choosing a recipe on more than one assignment's luck, and paired
with a baseline (or a tuned recipe with its untuned self) fold by fold.
"""

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from common import runner, tuning
from common.competition import Competition
from common.cv import CVResult, corrected_std_error
from common.errors import UsageError
from common.runner import Prepared
from common.runs import trials_text, won_a_study
from common.splitters import Backtest, RowFolds

log = logging.getLogger(__name__)

# The tasks whose pairs also count the rows where two recipes predict another class: only for them are the
# predictions kept until the end, for the others only the fold scores (a full-size Web Traffic backtest's predictions
# are 0.47 GB a repeat, times every recipe and repeat).
FLIPS_COUNTED = ("binary", "multiclass")


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One line of the comparison: a recipe with params, and for a tuned one the label of its untuned self."""

    label: str
    recipe: str
    params: dict[str, Any]
    untuned: str | None = None


@dataclasses.dataclass
class Scored:
    """A candidate's fold scores over every repeat, and (classification) its CV results, for the flipped rows."""

    fold_scores: np.ndarray
    results: list[CVResult]
    seconds: float


def candidates(comp: Competition, names: list[str], tuned: bool = False, storage: str | None = None,
               say: Callable[[str], None] = print) -> list[Candidate]:
    """Each recipe with its own params; with ``tuned``, also its study's best trial where one beat them (``say``
    tells why a recipe has no tuned line)."""
    out = []
    for name in names:
        out.append(Candidate(name, name, comp.recipe(name).params))
        if not tuned or (comp.recipe(name).space is None and not comp.recipe(name).members):
            continue
        try:
            params, source = tuning.best_params(comp, name, storage)
        except UsageError as exc:
            say(f"  ({name}: {exc})")
            continue
        if not won_a_study(source):
            say(f"  ({name}: no tuning trial beat the recipe's own params)")
            continue
        out.append(Candidate(f"{name} (tuned {trials_text(source)})", name, params, name))
    return out


def splitter(comp: Competition, split: str | None = None) -> Any:
    """The competition's splitter, or (``split``) another kind of its row folds: refused before any file is read
    where the competition has no row folds."""
    own = comp.folds
    if not split:
        return own
    if not isinstance(own, RowFolds):
        scored_on = ("backtest windows, which each repeat moves a week further back instead"
                     if isinstance(own, Backtest) else f"its own splitter ({type(own).__name__})")
        raise UsageError(f"--split chooses a kind of row folds; {comp.name} is scored on {scored_on}: leave --split "
                         "out")
    return own.with_kind(split)


def repeated_folds(folds: Any, prep: Prepared, n_folds: int, repeats: int, first_seed: int) -> list[Prepared]:
    """``prep`` with the folds the splitter ``folds`` makes for each repeat (fold seeds ``first_seed``,
    ``first_seed + 1``, ...)."""
    return [dataclasses.replace(prep, folds=folds.resplit(prep.data, n_folds, first_seed + repeat))
            for repeat in range(repeats)]


def score(comp: Competition, candidate: Candidate, repeats: list[Prepared], seed: int, resume: Any,
          first_seed: int) -> Scored:
    """The candidate's CV on every repeat, each finished fold kept in ``resume`` until the comparison ends."""
    started = time.perf_counter()
    results, fold_scores = [], []
    for i, prep in enumerate(repeats):
        result = runner.run_cv(prep, candidate.recipe, candidate.params, seed, with_test=False, resume=resume)
        fold_scores.append(result.fold_scores)
        if comp.task in FLIPS_COUNTED:
            results.append(result)
        log.info("%s: repeat %d/%d (fold seed %d) %s %.5f, %.0f s so far", candidate.label, i + 1, len(repeats),
                 first_seed + i, comp.metric.name, result.mean, time.perf_counter() - started)
    return Scored(np.concatenate(fold_scores), results, time.perf_counter() - started)


def paired(comp: Competition, y: Any, base: Scored, other: Scored, test_train_ratio: float) -> str:
    """The other recipe against the baseline on the same folds: fold-score gain ± its standard error (folds share
    rows, so the pairing removes the folds' own difficulty; the error is corrected for the training rows the folds
    share, common.cv.corrected_std_error; backtest repeats also share most of their forecast days, which it does not
    count, so there it is still too small), and for classifiers the rows whose predicted class
    differs - how many per repeat and on what share of them the other recipe is right. A gain carried by a handful
    of flipped rows is the kind the leaderboard does not repeat. The gain is in the metric's own direction: positive
    is better, for an error (RMSLE, SMAPE) as for a score."""
    diff = comp.metric.gain(other.fold_scores, base.fold_scores)
    error = corrected_std_error(diff, test_train_ratio)
    text = f"gain {diff.mean():+.5f}" + ("" if np.isnan(error) else f" ± {error:.5f}")
    if comp.task not in FLIPS_COUNTED:
        return text
    truth = np.asarray(y)
    flips = right = 0
    for b, o in zip(base.results, other.results, strict=True):
        seen = runner.validated(b.oof, cells=False)
        b_cls, o_cls = comp.decode(b.oof[seen]), comp.decode(o.oof[seen])
        differ = b_cls != o_cls
        flips += differ.sum()
        right += (o_cls[differ] == truth[seen][differ]).sum()
    share = f"{right / flips:.0%}" if flips else "-"
    return f"{text}; {flips / len(base.results):.1f} rows flipped per repeat, right on {share}"
