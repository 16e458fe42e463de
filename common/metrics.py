"""Kaggle-exact metrics, each carrying its direction so nothing downstream flips signs by hand."""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cmp_to_key
from typing import Literal, TypeVar

import numpy as np

T = TypeVar("T")


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable[[np.ndarray, np.ndarray], float]
    greater_is_better: bool
    # Scores only the order of the predictions (ROC AUC): a rank average of models is then a fair blend.
    ranking: bool = False

    def __call__(self, y_true, y_pred) -> float:
        return float(self.fn(np.asarray(y_true), np.asarray(y_pred)))

    def is_better(self, a: float, b: float) -> bool:
        """True when score ``a`` beats score ``b``."""
        return a > b if self.greater_is_better else a < b

    @property
    def direction_in_words(self) -> str:
        """How to read its scores, for people: "higher is better" or "lower is better"."""
        return "higher is better" if self.greater_is_better else "lower is better"

    def gain(self, new, old):
        """How much ``new`` beats ``old`` (scores or arrays of them): positive is better, for an error as for a
        score."""
        return new - old if self.greater_is_better else old - new

    def rank(self, items: Iterable[T], score: Callable[[T], float]) -> list[T]:
        """``items`` best first by ``score``, in this metric's direction (ties keep their order)."""
        def order(a: T, b: T) -> int:
            return -1 if self.is_better(score(a), score(b)) else 1 if self.is_better(score(b), score(a)) else 0

        return sorted(items, key=cmp_to_key(order))

    @property
    def direction(self) -> Literal["maximize", "minimize"]:
        return "maximize" if self.greater_is_better else "minimize"


def _check_lengths(y_true: np.ndarray, y_pred: np.ndarray) -> None:
    if y_true.shape[0] != y_pred.shape[0]:
        raise ValueError(f"y_true has {y_true.shape[0]} rows but y_pred has {y_pred.shape[0]}")


def accuracy_score(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    _check_lengths(y_true, y_pred)
    return float(np.mean(y_true == y_pred))


def f1_score(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Binary F1 of the positive class 1; 0 when there are no true or predicted positives."""
    _check_lengths(y_true, y_pred)
    tp = float(np.sum((y_true == 1) & (y_pred == 1)))
    fp = float(np.sum((y_true != 1) & (y_pred == 1)))
    fn = float(np.sum((y_true == 1) & (y_pred != 1)))
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def rmsle_score(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Root mean squared error of log1p values (House Prices); negative values are not defined."""
    _check_lengths(y_true, y_pred)
    if np.any(y_true < 0) or np.any(y_pred < 0):
        raise ValueError("RMSLE is undefined for negative values")
    return float(np.sqrt(np.mean((np.log1p(y_pred) - np.log1p(y_true)) ** 2)))


# SMAPE steps through this many cells at a time: its temporaries stay in the CPU's cache, and none is the size of
# the input (36 million cells: 0.62 s and over 1 GB of temporaries in one pass, 0.32 s in steps; BENCHMARKS.md)
SMAPE_STEP_CELLS = 1 << 16


def smape_score(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Kaggle's SMAPE in percent: 0 where actual and forecast are both 0; NaN actuals are skipped. Any shape (a
    series x days block as it is: a strided view is not copied whole)."""
    _check_lengths(y_true, y_pred)
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has shape {y_true.shape} but y_pred has {y_pred.shape}")
    total, count = 0.0, 0
    for a, f in zip(_cell_steps(y_true), _cell_steps(y_pred), strict=True):
        a = np.asarray(a, dtype=float)
        keep = ~np.isnan(a)
        if not keep.all():
            a, f = a[keep], f[keep]
        denom = np.abs(a)
        denom += np.abs(f)
        ratio = np.subtract(f, a, dtype=float)
        np.abs(ratio, out=ratio)
        np.divide(ratio, denom, out=ratio, where=denom != 0)  # 0 where both are 0: |f - a| is 0 there already
        total += float(ratio.sum())
        count += ratio.size
    return float("nan") if count == 0 else 200.0 * (total / count)


def _cell_steps(values: np.ndarray):
    """``values`` flattened, SMAPE_STEP_CELLS cells at a time (whole rows of a 2-d block)."""
    if values.ndim <= 1:
        flat = values.reshape(-1)
        for start in range(0, flat.size, SMAPE_STEP_CELLS):
            yield flat[start:start + SMAPE_STEP_CELLS]
        return
    rows = max(1, SMAPE_STEP_CELLS // max(1, values[0].size))
    for start in range(0, len(values), rows):
        yield values[start:start + rows].reshape(-1)


def roc_auc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Area under the ROC curve of binary labels against scores (ties count half), via the rank-sum statistic."""
    _check_lengths(y_true, y_score)
    positive = np.asarray(y_true) == 1
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("ROC AUC needs both classes in y_true")
    from scipy.stats import rankdata

    ranks = rankdata(y_score)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


ACCURACY = Metric("accuracy", accuracy_score, greater_is_better=True)
F1 = Metric("f1", f1_score, greater_is_better=True)
RMSLE = Metric("rmsle", rmsle_score, greater_is_better=False)
SMAPE = Metric("smape", smape_score, greater_is_better=False)
ROC_AUC = Metric("roc_auc", roc_auc, greater_is_better=True, ranking=True)

METRICS = {m.name: m for m in (ACCURACY, F1, RMSLE, SMAPE, ROC_AUC)}


def by_name(name: str, direction: str | None = None) -> Metric:
    """The metric a run record names; an unknown name (a user's own metric) is rebuilt from its direction."""
    if name in METRICS:
        return METRICS[name]
    return Metric(name, lambda y, p: float("nan"), greater_is_better=direction != "minimize")
