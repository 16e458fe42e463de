"""Pure cross-validation: no files; a progress bar on a terminal, one log line per fold elsewhere; the runner does the
I/O.

Every fold gets a fresh estimator from ``make_model`` and fits it on that fold's training part only, so any
preprocessing inside the estimator (a Pipeline) is fitted per fold and nothing from the validation part leaks in.
The folds come from a splitter (common.splitters): each part takes its slice of ``X`` and of the truth ``y`` and
puts its predictions into the out-of-fold container, so rows (one prediction or one per class) and series x days
(a forecast per window) run through the same loop.
"""

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from common.cli import duration_text
from common.splitters import Fold, Rows, refit_input

log = logging.getLogger(__name__)
LOG_FOLDS_FROM_SECONDS = 5.0  # quicker folds (Titanic's, House Prices' members) are summed up by the run at its end


@dataclass
class CVResult:
    oof: np.ndarray  # raw out-of-fold predictions keyed like y: per train row (x classes), or series x days
    test_pred: np.ndarray | None  # raw test predictions averaged over the fold models
    fold_scores: list[float]
    fold_seconds: list[float] = field(default_factory=list)
    members: dict[str, "CVResult"] = field(default_factory=dict)  # base recipes of a stack
    importance: list[Any] = field(default_factory=list)  # per fold: what ``explain`` said of its model
    scored: list[int] | None = None  # the indices of the folds behind fold_scores (None: the first ones)

    @property
    def fold_ids(self) -> list[int]:
        return list(range(len(self.fold_scores))) if self.scored is None else self.scored

    @property
    def mean(self) -> float:
        return float(np.mean(self.fold_scores))

    @property
    def std(self) -> float:
        return float(np.std(self.fold_scores))


@dataclass
class FoldOutcome:
    """What one fold left behind: enough to rebuild the CV without fitting its model again."""

    valid_pred: np.ndarray
    test_pred: np.ndarray | None
    score: float
    seconds: float
    importance: Any = None


class FoldStore(Protocol):
    """Where finished folds are kept so an interrupted CV resumes (the runner's ``common.resume``); ``key`` is the
    fold number, or ``"refit"`` for the model fitted on all of train."""

    def load(self, key: int | str) -> FoldOutcome | None: ...

    def save(self, key: int | str, outcome: FoldOutcome) -> None: ...


def corrected_std_error(differences: np.ndarray, test_train_ratio: float) -> float:
    """Standard error of the mean of paired fold-score differences over repeated CV, corrected for the folds'
    overlapping training sets (Nadeau & Bengio 2003; Bouckaert & Frank 2004): fold scores share most of their
    training rows, so they are not independent and the plain std / sqrt(n) is too small - for 10 x 5 folds by 3.7x.
    NaN for fewer than two differences."""
    differences = np.asarray(differences, dtype=float)
    if len(differences) < 2:
        return float("nan")
    return float(np.sqrt(np.var(differences, ddof=1) * (1 / len(differences) + test_train_ratio)))


def predict_raw(model: Any, X: pd.DataFrame) -> np.ndarray:
    """Probabilities of the positive class for binary classifiers, class probabilities for multiclass, else
    plain predictions; the competition's ``decode`` turns them into submission values."""
    if hasattr(model, "predict_proba"):
        proba = model.predict_proba(X)
        return proba[:, 1] if proba.shape[1] == 2 else proba
    return np.asarray(model.predict(X))


def as_fold(fold) -> Fold:
    """A splitter's Fold, or a plain (train indices, valid indices) pair as any scikit-learn splitter yields."""
    if isinstance(fold, Fold):
        return fold
    train_idx, valid_idx = fold
    return Fold(Rows(np.asarray(train_idx)), Rows(np.asarray(valid_idx)))


def cross_validate(
    make_model: Callable[[], Any],
    X,
    y: np.ndarray,
    folds: Iterable[Fold | tuple[np.ndarray, np.ndarray]],
    score: Callable[[np.ndarray, np.ndarray], float],
    X_test=None,
    predict: Callable[[Any, Any], np.ndarray] = predict_raw,
    on_fold: Callable[[int, float, list[float]], None] | None = None,
    progress: bool = True,
    scored: Sequence[int] | None = None,
    refit: bool = False,
    explain: Callable[[Any, Any, np.ndarray, float], Any] | None = None,
    store: FoldStore | None = None,
) -> CVResult:
    """Fit one model per fold; return out-of-fold predictions, fold-averaged test predictions and fold scores.

    ``scored``: the indices of the folds to fit and score (None: all; the others' rows stay NaN in ``oof``; a
    ``Folds`` says which, see ``Folds.scored``). ``on_fold(k, score,
    scores_so_far)`` runs after each fold; the tuning layer uses it to report to a pruner
    (raising there stops the CV early). ``refit``: the test prediction comes from one more model fitted on all of
    train (forecasters: on the whole history, which holds the newest weeks no fold model saw) instead of the
    average of the fold models. ``explain(model, X_valid, y_valid, fit_seconds)`` says what each fold model relied
    on (common.importance); its answers go into ``importance``. ``store``: folds finished by an earlier, interrupted
    call with the same inputs are taken from it instead of being fitted again, and each new fold is saved to it.
    """
    every = [as_fold(f) for f in folds]
    chosen = range(len(every)) if scored is None else scored
    folds = [every[k] for k in chosen]
    y = np.asarray(y)
    oof: np.ndarray | None = None
    test_sum: np.ndarray | None = None
    scores: list[float] = []
    seconds: list[float] = []
    importance: list[Any] = []
    # disable=None: a bar on a terminal, none in logs and CI output
    bar = tqdm(list(zip(chosen, folds, strict=True)), desc="cv", unit="fold", disable=None if progress else True,
               leave=False)
    for done, (k, fold) in enumerate(bar, start=1):
        outcome = _kept(store, k, partial(_fit_fold, make_model, X, y, fold, score, None if refit else X_test,
                                          predict, explain))
        oof = fold.valid.place(oof, y, outcome.valid_pred)
        if outcome.test_pred is not None:
            test_sum = outcome.test_pred.astype(float) if test_sum is None else test_sum + outcome.test_pred
        if explain is not None:
            importance.append(outcome.importance)
        scores.append(outcome.score)
        seconds.append(outcome.seconds)
        bar.set_postfix(score=f"{outcome.score:.5f}", mean=f"{np.mean(scores):.5f}")
        # no bar (a log file, CI, `make ... | tee`): a line for each fold long enough to wait for
        if progress and bar.disable and outcome.seconds >= LOG_FOLDS_FROM_SECONDS:
            _log_fold(k, outcome.score, done, len(folds), seconds)
        if on_fold is not None:
            on_fold(k, outcome.score, list(scores))
    bar.close()
    if oof is None:
        raise ValueError("no fold to score: cross_validate needs at least one")
    test_mean = None if test_sum is None else test_sum / len(folds)
    if refit and X_test is not None:
        test_mean = _kept(store, "refit", partial(_fit_all, make_model, X, y, X_test, predict)).test_pred
    return CVResult(oof=oof, test_pred=test_mean, fold_scores=scores, fold_seconds=seconds, importance=importance,
                    scored=list(chosen))


def _log_fold(k: int, score: float, done: int, total: int, seconds: list[float]) -> None:
    """Where a long CV stands (a fold of Web Traffic at full size takes minutes): the fold's score, and how long the
    folds still to come should take at the pace so far."""
    left = total - done
    pace = f"; {left} more, about {duration_text(left * float(np.mean(seconds)))}" if left else ""
    log.info("fold %d done (%d of %d): score %.5f in %s%s", k, done, total, score, duration_text(seconds[-1]), pace)


def _kept(store: FoldStore | None, key: int | str, compute: Callable[[], FoldOutcome]) -> FoldOutcome:
    """The outcome an earlier call kept in ``store``, else computed now (and kept)."""
    outcome = store.load(key) if store is not None else None
    if outcome is None:
        outcome = compute()
        if store is not None:
            store.save(key, outcome)
    return outcome


def _fit_all(make_model, X, y: np.ndarray, X_test, predict) -> FoldOutcome:
    """The ``refit`` model: fitted on all of train, it only predicts test."""
    started = time.perf_counter()
    model = make_model()
    model.fit(refit_input(X, X_test), y)
    return FoldOutcome(np.empty(0), np.asarray(predict(model, X_test), dtype=float), float("nan"),
                       time.perf_counter() - started)


def _fit_fold(make_model, X, y: np.ndarray, fold: Fold, score, X_test, predict, explain) -> FoldOutcome:
    started = time.perf_counter()
    model = make_model()
    model.fit(fold.train.take(X), fold.train.truth(y))
    fit_seconds = time.perf_counter() - started
    X_valid = fold.valid.take(X)
    valid_pred = predict(model, X_valid)
    fold_score = float(score(fold.valid.truth(y), valid_pred))
    test_pred = None if X_test is None else predict(model, X_test)
    said = explain(model, X_valid, fold.valid.truth(y), fit_seconds) if explain is not None else None
    return FoldOutcome(valid_pred, test_pred, fold_score, time.perf_counter() - started, said)
