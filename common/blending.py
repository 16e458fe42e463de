"""Blending the out-of-fold predictions of finished runs: weights chosen honestly, by nested CV.

Pure functions, no files (common/ensemble_runs.py does the I/O). Every member's predictions are keyed like the truth
``y`` (one value or one probability per class per train row, or series x days); a fold is a boolean ``mask`` over
that container (rows, or the cells of a backtest window), so rows and forecasts run through the same code.

Methods:
- ``hill``: greedy forward selection with replacement (Caruana et al. 2004, "Ensemble selection from libraries of
  models"): start from the best member, add (again) whichever member helps the metric most, keep the best prefix;
  weights are how often each was picked. In nested CV the blend is then shrunk towards that first pick by as much as
  a further leave-one-fold-out over the choosing folds says (``SHRINK``): a few folds overrate the blend they chose.
  Where the metric squares errors (RMSLE), the hill chooses without the rows no member explains (``Space.far``),
  which would otherwise set the weights for every ordinary row; the shrinkage still scores every row;
- ``nnls``: non-negative least squares of the truth on the members, weights normalised to sum to 1;
- ``rank``: equal-weight average of the ranks of the best members (only for metrics that score order, ROC AUC).

Blends are averaged in the metric's own space (``SPACES``): probabilities as they are, prices on the log scale that
RMSLE scores, forecasts of visits on log1p (and, for counts, rounded where that scores better). Honest CV: the
weights that score fold k are chosen on the other folds' rows only; the weights for the test prediction are chosen
on all of them (``nested``).
"""

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

import numpy as np

from common.errors import UsageError
from common.metrics import Metric

METHODS = ("hill", "nnls", "rank")
MAX_STEPS = 50  # picks of the hill climb (with replacement): weights in steps of 2 %
# How much of a hill blend to keep against its first pick, chosen one level further in. Measured on the README
# recipes' runs (BENCHMARKS.md, issue 15): as good as the plain hill or better on 8 of 10 (competition, fold seed)
# pairs, Titanic up to +0.0045; House Prices 0.00004 and Web Traffic's backtest 0.10 worse once each.
SHRINK = (0.0, 0.25, 0.5, 0.75, 1.0)
SHRINK_MIN_FOLDS = 3  # the share is chosen by leaving each choosing fold out in turn; on 2, one fold would choose
# Above this many cells (or rows) in a fold, the weights are chosen on a fixed sample of the series (rows), the same
# in every fold; every cell is still scored. Web Traffic at full size has 9 million cells a fold: a nested hill over
# all of them scores ~5 000 blends of 27-45 million cells (an hour for three runs, BENCHMARKS.md); the replica's
# 271 000 a fold are all used.
CHOOSE_CELLS = 1_000_000
SAMPLE_SEED = 0


@dataclass(frozen=True)
class Space:
    """Where predictions are averaged: ``to`` maps a prediction into it, ``back`` maps a blend out of it."""

    name: str
    to: Callable[[np.ndarray], np.ndarray]
    back: Callable[[np.ndarray], np.ndarray]
    far: float | None = None  # the hill chooses without rows whose truth lies further than this from the members'
    # median (in this space); for metrics that square errors, where a few such rows outweigh all the others


IDENTITY = Space("identity", lambda v: v, lambda v: v)
LOG1P = Space("log1p", lambda v: np.log1p(np.clip(v, 0, None)), np.expm1)
# 0.5 in log price: the House Prices default stack's meta-model leaves out the same rows (its partial sales). The
# hill over the README recipes' runs, nested CV on fold seeds 42-45: 0.11958 / 0.11145 / 0.11840 / 0.11023 against
# 0.12048 / 0.11145 / 0.11941 / 0.11023 choosing on every row (BENCHMARKS.md, issue 15).
FAR_LOG_PRICE = 0.5
# RMSLE scores log prices; SMAPE forecasts of visits blend better on log1p too (nested CV over the Web Traffic runs:
# hill 49.530 against 49.675 averaging the visits themselves, BENCHMARKS.md), as the recipes' own blend does.
SPACES = {"rmsle": replace(LOG1P, far=FAR_LOG_PRICE), "smape": LOG1P}


def space_for(metric: Metric) -> Space:
    return SPACES.get(metric.name, IDENTITY)


@dataclass
class Blend:
    weights: np.ndarray  # one per member, summing to 1
    rank: bool = False  # average ranks instead of values
    rounded: bool = False  # round the blend to whole numbers (counts)
    lead: int | None = None  # the best single member on the rows that chose it (with ``far``: on all their rows)
    shrink: float = 1.0  # how much of the blend was kept against its lead (nested CV chooses it)

    def towards_lead(self, keep: float) -> "Blend":
        """``keep`` of these weights, the rest on the lead member (1: the blend as chosen, 0: the lead alone)."""
        weights = keep * np.asarray(self.weights, dtype=float)
        weights[self.lead] += 1.0 - keep
        return Blend(weights, self.rank, self.rounded, self.lead, keep)

    def apply(self, preds: list[np.ndarray], space: Space) -> np.ndarray:
        """The blend of the members' predictions (all keyed alike), back in prediction space."""
        if self.rank:
            return sum(w * _ranks(p) for w, p in zip(self.weights, preds, strict=True) if w > 0)
        blended = space.back(sum(w * space.to(np.asarray(p, dtype=float))
                                 for w, p in zip(self.weights, preds, strict=True) if w > 0))
        return np.round(blended) if self.rounded else blended


def far_from_median(columns: np.ndarray, target: np.ndarray, distance: float) -> np.ndarray:
    """Rows whose ``target`` lies more than ``distance`` from the median of the members' ``columns`` (rows x
    members, in the blend space): rows no member explains."""
    return np.abs(np.asarray(target, dtype=float) - np.median(columns, axis=1)) > distance


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks scaled to (0, 1], so rank averages of sets of different sizes stay comparable."""
    from scipy.stats import rankdata

    values = np.asarray(values, dtype=float)
    return rankdata(values, axis=0) / values.shape[0]


Score = Callable[[np.ndarray, np.ndarray], float]  # (truth, predictions in prediction space) -> metric


def _truth_like(y: np.ndarray, like: np.ndarray, space: Space) -> np.ndarray:
    """The truth in the blend space, shaped like a member's predictions: class labels become one-hot rows when the
    members give class probabilities (NaN truth, the forecasts' missing actuals, stays NaN)."""
    truth = np.asarray(y, dtype=float)
    if like.ndim == 2 and truth.ndim == 1:
        truth = np.eye(like.shape[1])[truth.astype(int)]
    return space.to(truth)


class _Trial:
    """A candidate blend of the hill climb: its metric, and its squared error in the blend space - the tie-breaker,
    since a step metric such as accuracy ties often on small data - worked out only when a tie asks for it."""

    def __init__(self, score: float, mixed: np.ndarray):
        self.score = score
        self._mixed: np.ndarray | None = mixed
        self._error: float | None = None

    def error(self, target: np.ndarray) -> float:
        if self._error is None:
            self._error = float(np.nanmean((self._mixed - target) ** 2))
            self._mixed = None
        return self._error


def _added(total: np.ndarray, transformed: list[np.ndarray], n: int, i: int) -> np.ndarray:
    """The blend of ``n`` picks: those summed in ``total`` and member ``i`` once more."""
    return (total + transformed[i]) / n


def hill_climb(preds: list[np.ndarray], y: np.ndarray, score: Score, metric: Metric, space: Space,
               max_members: int | None = None, max_steps: int = MAX_STEPS) -> Blend:
    """Caruana's ensemble selection with replacement, in ``metric``'s own direction: ``max_steps`` greedy picks
    (the best next member even when it does not improve, so 1:0 can move on to 2:1 rather than stop before a 1:1
    that is worse), then the best prefix of the picks. Candidates that tie on the metric are told apart by squared
    error (missing truth skipped); earlier members and shorter prefixes win what still ties."""
    transformed = [space.to(np.asarray(p, dtype=float)) for p in preds]
    target = _truth_like(y, transformed[0], space)

    def trial(mixed: np.ndarray) -> _Trial:
        return _Trial(score(y, space.back(mixed)), mixed)

    def better(a: _Trial, b: _Trial) -> bool:
        if metric.is_better(a.score, b.score):
            return True
        return not metric.is_better(b.score, a.score) and a.error(target) < b.error(target)

    def best_of(candidates: list[int], mix: Callable[[int], np.ndarray]) -> tuple[int, _Trial]:
        """The best candidate, the first of those that tie; each blend is made and scored in turn and only the
        winner so far is kept (at full size Web Traffic's blends are 36 million cells each)."""
        winner, won = candidates[0], trial(mix(candidates[0]))
        for i in candidates[1:]:
            challenger = trial(mix(i))
            if better(challenger, won):
                winner, won = i, challenger
        return winner, won

    first, best = best_of(list(range(len(preds))), lambda i: transformed[i])
    counts = np.zeros(len(preds))
    counts[first] = 1
    total = transformed[first].copy()
    best_counts = counts.copy()
    for step in range(1, max_steps):
        allowed = [i for i in range(len(preds))
                   if counts[i] > 0 or max_members is None or (counts > 0).sum() < max_members]
        pick, picked = best_of(allowed, partial(_added, total, transformed, step + 1))
        counts[pick] += 1
        total += transformed[pick]
        if better(picked, best):
            best, best_counts = picked, counts.copy()
    return Blend(best_counts / best_counts.sum(), lead=first)


def nnls_blend(preds: list[np.ndarray], y: np.ndarray, space: Space, max_members: int | None = None) -> Blend:
    """Least-squares weights >= 0 in the blend space (class probabilities against one-hot truth, weights shared by
    the classes), normalised; with ``max_members`` only the largest weights are kept (and refitted)."""
    from scipy.optimize import nnls

    columns = [space.to(np.asarray(p, dtype=float)) for p in preds]
    target = _truth_like(y, columns[0], space).ravel()
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
    fold_shrink: list[float]  # the share of each fold's hill blend kept against its lead (1.0 for other methods)
    shrink: float  # the same for the test prediction's weights
    member_fold_scores: list[list[float]]  # every member's score on every fold (its own CV on these folds)
    left_out: int = 0  # rows no member explains (``Space.far``), left out where the hill chooses; all are scored
    chosen_on: int | None = None  # the series (rows) of the sample the weights were chosen on (``CHOOSE_CELLS``)


def fold_mean(score: Score, sizes: list[int]) -> Score:
    """The score of rows stacked fold after fold: the mean of the folds' scores - what a run's CV reports, so the
    blend is chosen on the figure it is judged by (for RMSLE this is not the pooled score: one fold's outliers
    would otherwise weigh more than the others' typical rows)."""
    bounds = np.cumsum([0, *sizes])

    def scored(y: np.ndarray, pred: np.ndarray) -> float:
        return float(np.mean([score(y[a:b], pred[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]))

    return scored


def nested(method: str, oofs: list[np.ndarray], tests: list[np.ndarray], y: np.ndarray, masks: list[np.ndarray],
           score: Score, metric: Metric, max_members: int | None = None, counts: bool = False,
           shrink: bool = True) -> NestedBlend:
    """Cross-validate the blending itself: fold k is blended with weights chosen on the other folds' rows only
    (scored as the mean of those folds' scores). ``counts``: the truth is whole numbers (visits), so the blend is
    also tried rounded, and rounded where that scores better on the same folds that chose its weights. A hill blend
    chosen on three folds or more is shrunk towards its lead by the share of ``SHRINK`` that scores best when each
    of those folds in turn is left out of the choice and scores it (ties go to the smaller share; ``shrink=False``:
    the plain hill, for comparison). Where the space has ``far``, the hill chooses without the rows that far from
    the members' median (a fold keeps all its rows if none would be left); every row is scored, in the shrinkage too
    - which is what keeps this honest where those rows matter (measured: without the shrinkage, or with nnls, choosing
    without them costs 0.008 RMSLE on fold assignments that split the House Prices partial sales) - and the lead the
    blend is shrunk towards is the best single member on every row of the choosing folds, as their CV ranks them."""
    if len(masks) < 2:
        raise UsageError("an honest blend needs at least two folds that every member scored (the weights for one "
                         "fold are chosen on the others)")
    space = space_for(metric)
    y = np.asarray(y)
    oof = np.full(oofs[0].shape, np.nan)
    chooses, far_left_out = masks, False
    if method == "hill" and space.far is not None and y.ndim == 1 and oofs[0].ndim == 1:
        explained = ~far_from_median(np.column_stack([space.to(np.asarray(p, dtype=float)) for p in oofs]),
                                     space.to(y.astype(float)), space.far)
        chooses, far_left_out = [m & explained if (m & explained).any() else m for m in masks], True
    left_out = int(sum(np.count_nonzero(m & ~c) for m, c in zip(masks, chooses, strict=True)))
    sample = series_sample(masks, CHOOSE_CELLS)
    if sample is not None:
        along = sample if masks[0].ndim == 1 else sample[:, None]
        chooses = [c & along if (c & along).any() else c for c in chooses]
    fold_scores, fold_weights, fold_rounded, fold_shrink = [], [], [], []

    chosen: dict[tuple[int, ...], Blend] = {}  # one choice per set of folds: the nested levels share many

    def rows_of(folds: tuple[int, ...], rows: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray, Score]:
        """Those folds' ``rows`` stacked fold after fold: each member's predictions, the truth, the fold-mean score."""
        parts = [rows[j] for j in folds]
        return ([np.concatenate([p[m] for m in parts]) for p in oofs], np.concatenate([y[m] for m in parts]),
                fold_mean(score, [int(np.count_nonzero(m)) for m in parts]))

    # every member on every row of every fold, once (Web Traffic's full-size folds are 9 million cells)
    singles = [[float(score(y[m], p[m])) for m in masks] for p in oofs]

    def best_single(folds: tuple[int, ...]) -> int:
        """The member whose mean fold score over ``folds`` is best."""
        means = [float(np.mean([singles[i][j] for j in folds])) for i in range(len(oofs))]
        return metric.rank(range(len(oofs)), lambda i: means[i])[0]

    def choose_on(folds: tuple[int, ...]) -> Blend:
        if folds in chosen:
            return chosen[folds]
        stacked, truth, by_fold = rows_of(folds, chooses)
        blend = choose(method, stacked, truth, by_fold, metric, max_members)
        if counts and method != "rank":  # weights chosen for the rounded blend, kept if it scores better
            whole = choose(method, stacked, truth, lambda t, p: by_fold(t, np.round(p)), metric, max_members)
            whole.rounded = True
            rounded, plain = (by_fold(truth, b.apply(stacked, space)) for b in (whole, blend))
            if metric.is_better(rounded, plain):
                blend = whole
        if (far_left_out or sample is not None) and blend.lead is not None:
            blend.lead = best_single(folds)  # the fallback: the best run on every row, as CV ranks runs
        chosen[folds] = blend
        return blend

    def shrunk_on(folds: tuple[int, ...]) -> Blend:
        blend = choose_on(folds)
        if method != "hill" or not shrink or len(folds) < SHRINK_MIN_FOLDS:
            return blend
        scores: dict[float, list[float]] = {keep: [] for keep in SHRINK}
        for held in folds:
            inner = choose_on(tuple(j for j in folds if j != held))
            rows = masks[held]
            held_preds = [p[rows] for p in oofs]
            for keep in SHRINK:
                scores[keep].append(score(y[rows], inner.towards_lead(keep).apply(held_preds, space)))
        return blend.towards_lead(metric.rank(SHRINK, lambda keep: float(np.mean(scores[keep])))[0])

    everything = tuple(range(len(masks)))
    _choose_side_by_side(choose_on, _fold_sets(len(masks), method == "hill" and shrink))
    for k, mask in enumerate(masks):
        blend = shrunk_on(tuple(j for j in everything if j != k))
        oof[mask] = blend.apply([p[mask] for p in oofs], space)
        fold_scores.append(float(score(y[mask], oof[mask])))
        fold_weights.append(blend.weights)
        fold_rounded.append(blend.rounded)
        fold_shrink.append(blend.shrink)
    final = shrunk_on(everything)
    return NestedBlend(oof, final.apply(tests, space), fold_scores, fold_weights, final.weights, fold_rounded,
                       final.rounded, fold_shrink, final.shrink, singles, left_out,
                       None if sample is None else int(np.count_nonzero(sample)))


def _fold_sets(n: int, shrinking: bool) -> list[tuple[int, ...]]:
    """The sets of folds ``nested`` chooses weights on: all but one fold (each fold's weights), all of them (the
    test's), and where a hill blend is shrunk, each of those less one more fold."""
    everything = tuple(range(n))
    outer = [tuple(j for j in everything if j != k) for k in everything] + [everything]
    sets = dict.fromkeys(outer)
    for folds in outer if shrinking else []:
        if len(folds) >= SHRINK_MIN_FOLDS:
            sets.update(dict.fromkeys(tuple(j for j in folds if j != held) for held in folds))
    return list(sets)


def _choose_side_by_side(choose_on: Callable[[tuple[int, ...]], Blend], sets: list[tuple[int, ...]]) -> None:
    """Make the choices (each on its own set of folds, kept by ``choose_on``) in one thread per core: they do not
    depend on each other, and numpy works outside the GIL (at full size Web Traffic's 16 choices take minutes)."""
    from concurrent.futures import ThreadPoolExecutor

    from common.compute import n_threads

    workers = min(n_threads(), len(sets))
    if workers < 2:
        return
    pool = ThreadPoolExecutor(workers, thread_name_prefix="blend")
    try:
        list(pool.map(choose_on, sets))
    except BaseException:  # Ctrl-C: the choices under way end, none of those waiting starts
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()


def series_sample(masks: list[np.ndarray], cells: int = CHOOSE_CELLS) -> np.ndarray | None:
    """A fixed sample of the series (rows) that keeps about ``cells`` cells of the largest fold (None when every
    fold has that few): the same series in every fold and every run, drawn with ``SAMPLE_SEED``."""
    largest = max(int(np.count_nonzero(m)) for m in masks)
    if largest <= cells:
        return None
    n = masks[0].shape[0]
    chosen = np.zeros(n, dtype=bool)
    chosen[np.random.default_rng(SAMPLE_SEED).choice(n, size=max(1, n * cells // largest), replace=False)] = True
    return chosen
