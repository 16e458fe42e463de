"""What a fitted fold model relied on, for the run record and the report.

LightGBM models (found inside pipelines, target transforms and the toolkit's wrappers; in a blend, its LightGBM
member) give their total split gain per feature. Any other model on a feature frame gets permutation importance on
the fold's held-out rows: how much the metric worsens when one column's values are shuffled - bounded in time, since
a slow model (text embeddings, a CNN) could otherwise spend longer explaining than fitting: when the budget cannot
cover every feature on all held-out rows, a random subset of the rows is used. Models on arrays (images) get the
same over the named column groups their competition declares (blocks of pixels); models on series without a
LightGBM inside have none.
"""

import logging
import re
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

# Attributes under which fitted estimators keep the estimator they wrap (scikit-learn's and the toolkit's own).
INNER = ("regressor_", "estimator_", "model_", "classifier_", "final_estimator_", "best_estimator_")
MAX_DEPTH = 6
PERMUTATION_SHARE = 0.25  # of the fold's fit time, at most
PERMUTATION_CAP_S = 30.0
PERMUTATION_FLOOR_S = 1.0
MIN_ROWS = 500  # fewer held-out rows than this would measure little but noise


def _find_lightgbm(model: Any, depth: int = 0) -> tuple[Any, Any] | None:
    """(the LightGBM estimator, the pipeline steps before it or None) somewhere inside ``model``."""
    if depth > MAX_DEPTH or model is None:
        return None
    if hasattr(model, "booster_") and hasattr(model.booster_, "feature_importance"):
        return model, None
    steps = getattr(model, "steps", None)
    if steps:
        found = _find_lightgbm(steps[-1][1], depth + 1)
        if found is not None:
            head = model[:-1] if found[1] is None and len(steps) > 1 else found[1]
            return found[0], head
        return None
    for name in INNER:
        found = _find_lightgbm(getattr(model, name, None), depth + 1)
        if found is not None:
            return found
    fitted = getattr(model, "fitted_", None)  # a blend's fitted members by name (Web Traffic's Blend)
    if isinstance(fitted, dict):
        for member in fitted.values():
            found = _find_lightgbm(member, depth + 1)
            if found is not None:
                return found
    return None


def gain(model: Any) -> dict[str, float] | None:
    """Total split gain per feature of a LightGBM model inside ``model``, or None."""
    found = _find_lightgbm(model)
    if found is None:
        return None
    lgbm, head = found
    values = lgbm.booster_.feature_importance(importance_type="gain")
    names = list(lgbm.booster_.feature_name())
    if all(re.fullmatch(r"Column_\d+", n) for n in names) and head is not None:
        names = _names_from(head, len(names)) or names
    return {str(n): float(v) for n, v in zip(names, values, strict=True)}


def _names_from(head: Any, count: int) -> list[str] | None:
    """Feature names a numpy step lost, from the last step before the model that can tell them (an encoder's
    ColumnTransformer can; a custom imputer before it need not)."""
    for _, step in reversed(getattr(head, "steps", [("", head)])):
        try:
            names = [str(n) for n in step.get_feature_names_out()]
        except (AttributeError, ValueError, TypeError):
            continue
        return names if len(names) == count else None
    return None


def _shuffled(X: Any, columns: Any, order: np.ndarray) -> Any:
    """``X`` with the rows of ``columns`` (names of a frame, indices of an array) taken in ``order``."""
    out = X.copy()
    if isinstance(X, pd.DataFrame):
        out[columns] = X[columns].to_numpy()[order]
    else:
        out[:, columns] = X[order][:, columns]
    return out


def _rows(X: Any, rows: np.ndarray) -> Any:
    return X.iloc[rows] if isinstance(X, pd.DataFrame) else X[rows]


def permutation(model: Any, X: pd.DataFrame | np.ndarray, y: np.ndarray,
                score: Callable[[np.ndarray, np.ndarray], float], predict: Callable[[Any, Any], np.ndarray],
                metric_gain: Callable[[float, float], float], budget_s: float, seed: int = 0,
                groups: dict[str, Any] | None = None, min_rows: int = MIN_ROWS) -> dict[str, float]:
    """How much the score gets worse when each feature is shuffled across rows (positive: the model relied on it;
    ``metric_gain`` is ``Metric.gain``, so errors and scores count the same way). A feature is a
    column of a frame, or one of ``groups`` (name -> columns shuffled together, required for arrays). Features are
    measured in a random order until ``budget_s`` is spent (the first always); the ones it did not reach are left
    out. When the first prediction shows that every feature on all rows would overrun the budget, a random subset
    of the rows (at least ``min_rows``) is scored instead."""
    rng = np.random.default_rng(seed)
    if groups is None:
        if not isinstance(X, pd.DataFrame):
            raise TypeError("permutation importance of an array needs groups (name -> columns)")
        groups = {str(c): [c] for c in X.columns}
    order = rng.permutation(len(y))
    pilot = np.sort(order[:min_rows])  # timed first: all rows of a slow model could take the whole budget
    started = time.perf_counter()
    pilot_pred = predict(model, _rows(X, pilot))
    per_row = (time.perf_counter() - started) / max(len(pilot), 1)
    affordable = max(min_rows, int(budget_s / max(per_row * len(groups), 1e-12)))
    if affordable < len(y):  # the sample starts with the pilot's rows: at the minimum size it is the pilot
        rows = np.sort(order[:affordable])
        X, y = _rows(X, rows), y[rows]
        log.info("permutation importance on %d of the held-out rows, to fit the %.0fs budget", len(y), budget_s)
    base = score(y, pilot_pred if len(pilot) == len(y) else predict(model, X))
    started = time.perf_counter()
    out: dict[str, float] = {}
    for name in rng.permutation(np.asarray(list(groups), dtype=object)):
        if out and time.perf_counter() - started > budget_s:
            log.info("permutation importance: the %.0fs budget covered %d of %d features", budget_s, len(out),
                     len(groups))
            break
        shuffled = score(y, predict(model, _shuffled(X, groups[name], rng.permutation(len(y)))))
        out[str(name)] = float(metric_gain(base, shuffled))
    return out


def explainer(score: Callable[[np.ndarray, np.ndarray], float], metric_gain: Callable[[float, float], float],
              predict: Callable[[Any, Any], np.ndarray],
              groups: Callable[[int], dict[str, Any]] | None = None) -> Callable[..., tuple[str, dict] | None]:
    """The per-fold hook of ``cross_validate``: (kind, importance per feature) of a fitted fold model, or None.
    ``groups``: for array features, the competition's named column groups (``Competition.importance_groups``)."""

    def explain(model: Any, X_valid: Any, y_valid: np.ndarray, fit_seconds: float) -> tuple[str, dict] | None:
        found = gain(model)
        if found is not None:
            return "gain", found
        if isinstance(X_valid, pd.DataFrame) and X_valid.shape[1] > 0:
            named = None
        elif isinstance(X_valid, np.ndarray) and X_valid.ndim == 2 and groups is not None:
            named = groups(X_valid.shape[1])
        else:
            return None
        budget = min(PERMUTATION_CAP_S, max(PERMUTATION_FLOOR_S, PERMUTATION_SHARE * fit_seconds))
        return "permutation", permutation(model, X_valid, np.asarray(y_valid), score, predict, metric_gain,
                                          budget, groups=named)

    return explain


def summarise(per_fold: list[tuple[str, dict[str, float]] | None]) -> dict[str, Any]:
    """The run record's ``importance``: the kind and each feature's mean over the folds that measured it, largest
    first (empty when no fold model had any)."""
    measured = [p for p in per_fold if p is not None]
    if not measured:
        return {}
    kind = measured[0][0]
    frame = pd.DataFrame([values for k, values in measured if k == kind])
    mean = frame.mean(axis=0, skipna=True).sort_values(ascending=False)
    return {"kind": kind, "folds": len(frame), "features": {str(k): float(v) for k, v in mean.items()}}
