"""Blending the out-of-fold predictions of finished runs: weights chosen honestly, by nested CV.

Pure functions, no files (common/ensemble_runs.py does the I/O). Every member's predictions are keyed like the truth
``y`` (one value or one probability per class per train row, or series x days); a fold is a boolean ``mask`` over
that container (rows, or the cells of a backtest window), so rows and forecasts run through the same code.

Methods:
- ``hill``: greedy forward selection with replacement (Caruana et al. 2004, "Ensemble selection from libraries of
  models"): start from the best member, add (again) whichever member helps the metric most, keep the best prefix;
  weights are how often each was picked;
- ``nnls``: non-negative least squares of the truth on the members, weights normalised to sum to 1;
- ``rank``: equal-weight average of the ranks of the best members (only for metrics that score order, ROC AUC).

Blends are averaged in the metric's own space (``SPACES``): probabilities as they are, prices on the log scale that
RMSLE scores, forecasts of visits on log1p (and, for counts, rounded where that scores better). Honest CV: the
weights that score fold k are chosen on the other folds' rows only; the weights for the test prediction are chosen
on all of them (``nested``).
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from common.errors import UsageError
from common.metrics import Metric

METHODS = ("hill", "nnls", "rank")
MAX_STEPS = 50  # picks of the hill climb (with replacement): weights in steps of 2 %


@dataclass(frozen=True)
class Space:
    """Where predictions are averaged: ``to`` maps a prediction into it, ``back`` maps a blend out of it."""

    name: str
    to: Callable[[np.ndarray], np.ndarray]
    back: Callable[[np.ndarray], np.ndarray]


IDENTITY = Space("identity", lambda v: v, lambda v: v)
LOG1P = Space("log1p", lambda v: np.log1p(np.clip(v, 0, None)), np.expm1)
# RMSLE scores log prices; SMAPE forecasts of visits blend better on log1p too (nested CV over the Web Traffic runs:
# hill 49.530 against 49.675 averaging the visits themselves, BENCHMARKS.md), as the recipes' own blend does.
SPACES = {"rmsle": LOG1P, "smape": LOG1P}


def space_for(metric: Metric) -> Space:
    return SPACES.get(metric.name, IDENTITY)


@dataclass
class Blend:
    weights: np.ndarray  # one per member, summing to 1
    rank: bool = False  # average ranks instead of values
    rounded: bool = False  # round the blend to whole numbers (counts)

    def apply(self, preds: list[np.ndarray], space: Space) -> np.ndarray:
        """The blend of the members' predictions (all keyed alike), back in prediction space."""
        if self.rank:
            return sum(w * _ranks(p) for w, p in zip(self.weights, preds, strict=True) if w > 0)
        blended = space.back(sum(w * space.to(np.asarray(p, dtype=float))
                                 for w, p in zip(self.weights, preds, strict=True) if w > 0))
        return np.round(blended) if self.rounded else blended


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks scaled to (0, 1], so rank averages of sets of different sizes stay comparable."""
    from scipy.stats import rankdata

    values = np.asarray(values, dtype=float)
    return rankdata(values, axis=0) / values.shape[0]


Score = Callable[[np.ndarray, np.ndarray], float]  # (truth, predictions in prediction space) -> metric


def _squared_error(y: np.ndarray, blended: np.ndarray, space: Space) -> float:
    """Mean squared error in the blend space (class probabilities against one-hot truth; missing truth skipped):
    the tie-breaker of the hill climb, since a step metric such as accuracy ties often on small data."""
    truth = np.asarray(y, dtype=float)
    if blended.ndim == 2 and truth.ndim == 1:
        truth = np.eye(blended.shape[1])[truth.astype(int)]
    err = space.to(np.asarray(blended, dtype=float)) - space.to(truth)
    return float(np.nanmean(err**2))


def hill_climb(preds: list[np.ndarray], y: np.ndarray, score: Score, metric: Metric, space: Space,
               max_members: int | None = None, max_steps: int = MAX_STEPS) -> Blend:
    """Caruana's ensemble selection with replacement, in ``metric``'s own direction: ``max_steps`` greedy picks
    (the best next member even when it does not improve, so 1:0 can move on to 2:1 rather than stop before a 1:1
    that is worse), then the best prefix of the picks. Candidates that tie on the metric (a step metric such as
    accuracy ties often on small data) are told apart by squared error; earlier members and shorter prefixes win
    what still ties."""
    transformed = [space.to(np.asarray(p, dtype=float)) for p in preds]

    def key(p: np.ndarray) -> tuple[float, float]:
        return score(y, p), _squared_error(y, p, space)

    def better(a: tuple[float, float], b: tuple[float, float]) -> bool:
        if metric.is_better(a[0], b[0]):
            return True
        return not metric.is_better(b[0], a[0]) and a[1] < b[1]

    def best_of(keys: dict[int, tuple[float, float]]) -> int:
        winner = next(iter(keys))
        for i in keys:
            winner = i if better(keys[i], keys[winner]) else winner
        return winner

    first = best_of({i: key(p) for i, p in enumerate(preds)})
    counts = np.zeros(len(preds))
    counts[first] = 1
    total, best = transformed[first].copy(), key(preds[first])
    best_counts = counts.copy()
    for step in range(1, max_steps):
        allowed = [i for i in range(len(preds))
                   if counts[i] > 0 or max_members is None or (counts > 0).sum() < max_members]
        trials = {i: key(space.back((total + transformed[i]) / (step + 1))) for i in allowed}
        pick = best_of(trials)
        counts[pick] += 1
        total += transformed[pick]
        if better(trials[pick], best):
            best, best_counts = trials[pick], counts.copy()
    return Blend(best_counts / best_counts.sum())


def nnls_blend(preds: list[np.ndarray], y: np.ndarray, space: Space, max_members: int | None = None) -> Blend:
    """Least-squares weights >= 0 in the blend space (class probabilities against one-hot truth), normalised; with
    ``max_members`` only the largest weights are kept (and refitted)."""
    from scipy.optimize import nnls

    truth = np.asarray(y)
    columns = [space.to(np.asarray(p, dtype=float)) for p in preds]
    if columns[0].ndim == 2 and truth.ndim == 1:  # class probabilities: one-hot truth, weights shared by classes
        truth = np.eye(columns[0].shape[1])[truth.astype(int)]
    target = space.to(truth.astype(float)).ravel()
    A = np.column_stack([c.ravel() for c in columns])
    keep = ~np.isnan(target)  # missing actuals (forecasts) are skipped, as the metric skips them
    weights = nnls(A[keep], target[keep])[0]
    if max_members is not None and (weights > 0).sum() > max_members:
        chosen = np.argsort(-weights)[:max_members]
        weights = np.zeros(len(preds))
        weights[chosen] = nnls(A[keep][:, chosen], target[keep])[0]
    if weights.sum() <= 0:
        weights = np.ones(len(preds))
    return Blend(weights / weights.sum())


def rank_blend(preds: list[np.ndarray], y: np.ndarray, score: Score, metric: Metric,
               max_members: int | None = None) -> Blend:
    """Equal weights on the ranks of the ``max_members`` best members (all of them by default)."""
    if not metric.ranking:
        raise UsageError(f"--method rank averages ranks, which only suits metrics that score order (such as "
                         f"roc_auc); {metric.name} needs the values themselves: use hill or nnls")
    singles = [score(y, p) for p in preds]
    order = metric.rank(range(len(preds)), lambda i: singles[i])[:max_members]
    weights = np.zeros(len(preds))
    weights[order] = 1.0 / len(order)
    return Blend(weights, rank=True)


def choose(method: str, preds: list[np.ndarray], y: np.ndarray, score: Score, metric: Metric,
           max_members: int | None = None) -> Blend:
    space = space_for(metric)
    if method == "hill":
        return hill_climb(preds, y, score, metric, space, max_members)
    if method == "nnls":
        return nnls_blend(preds, y, space, max_members)
    if method == "rank":
        return rank_blend(preds, y, score, metric, max_members)
    raise UsageError(f"unknown blend method {method!r}; choose one of: {', '.join(METHODS)}")


@dataclass
class NestedBlend:
    oof: np.ndarray  # the blend's out-of-fold predictions: fold k blended with the weights of the other folds
    test_pred: np.ndarray
    fold_scores: list[float]
    fold_weights: list[np.ndarray]  # the weights that scored each fold
    weights: np.ndarray  # chosen on every fold's rows: the test prediction's
    fold_rounded: list[bool]  # whether each fold's blend was rounded (counts only)
    rounded: bool  # whether the test prediction is


def fold_mean(score: Score, sizes: list[int]) -> Score:
    """The score of rows stacked fold after fold: the mean of the folds' scores - what a run's CV reports, so the
    blend is chosen on the figure it is judged by (for RMSLE this is not the pooled score: one fold's outliers
    would otherwise weigh more than the others' typical rows)."""
    bounds = np.cumsum([0, *sizes])

    def scored(y: np.ndarray, pred: np.ndarray) -> float:
        return float(np.mean([score(y[a:b], pred[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]))

    return scored


def nested(method: str, oofs: list[np.ndarray], tests: list[np.ndarray], y: np.ndarray, masks: list[np.ndarray],
           score: Score, metric: Metric, max_members: int | None = None, counts: bool = False) -> NestedBlend:
    """Cross-validate the blending itself: fold k is blended with weights chosen on the other folds' rows only
    (scored as the mean of those folds' scores). ``counts``: the truth is whole numbers (visits), so the blend is
    also tried rounded, and rounded where that scores better on the same folds that chose its weights."""
    if len(masks) < 2:
        raise UsageError("an honest blend needs at least two folds that every member scored (the weights for one "
                         "fold are chosen on the others)")
    space = space_for(metric)
    y = np.asarray(y)
    oof = np.full(oofs[0].shape, np.nan)
    fold_scores, fold_weights, fold_rounded = [], [], []

    def choose_on(folds: list[np.ndarray]) -> Blend:
        stacked = [np.concatenate([p[m] for m in folds]) for p in oofs]
        by_fold = fold_mean(score, [int(np.count_nonzero(m)) for m in folds])
        truth = np.concatenate([y[m] for m in folds])
        blend = choose(method, stacked, truth, by_fold, metric, max_members)
        if counts and method != "rank":  # weights chosen for the rounded blend, kept if it scores better
            whole = choose(method, stacked, truth, lambda t, p: by_fold(t, np.round(p)), metric, max_members)
            whole.rounded = True
            rounded, plain = (by_fold(truth, b.apply(stacked, space)) for b in (whole, blend))
            if metric.is_better(rounded, plain):
                return whole
        return blend

    for k, mask in enumerate(masks):
        blend = choose_on([m for j, m in enumerate(masks) if j != k])
        oof[mask] = blend.apply([p[mask] for p in oofs], space)
        fold_scores.append(float(score(y[mask], oof[mask])))
        fold_weights.append(blend.weights)
        fold_rounded.append(blend.rounded)
    final = choose_on(masks)
    return NestedBlend(oof, final.apply(tests, space), fold_scores, fold_weights, final.weights, fold_rounded,
                       final.rounded)
