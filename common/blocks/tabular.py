"""Leak-safe, scikit-learn compatible transformers shared by competitions.

Anything that learns from labels or from the data's distribution is a transformer fitted inside the CV pipeline,
so each fold learns it from its own training rows only.
"""

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, TransformerMixin, clone
from sklearn.model_selection import KFold

from common.competition import binary_labels
from common.constraints import (
    FIT_PREDICT,
    NON_NEGATIVE,
    NON_NEGATIVE_INT,
    OPTIONAL_TEXT,
    TEXT,
    Checked,
    at_least,
    between,
)


class GroupTargetMean(Checked, TransformerMixin, BaseEstimator):
    """Target mean of the *other* labelled rows sharing a group (family, ticket, neighbourhood...).

    Adds ``<group>_mean`` (mean target of labelled members - a survival rate for a binary target - or the prior
    when none is known) and ``<group>_count`` (how many were labelled) and drops the raw group column. With
    ``member_col`` only rows where it is true count as members (e.g. the women and children of a Titanic family).

    Leak safety: at ``fit_transform`` time training rows are encoded by inner cross-fitting, so a row never sees its
    own label (the trap of naive and leave-one-out target encoding); at ``transform`` time, rows see every training
    row - exactly what a test passenger sees from the labelled train set.
    """

    _parameter_constraints: dict = {"groups": [list, tuple], "member_col": OPTIONAL_TEXT, "cv": at_least(2),
                                    "random_state": NON_NEGATIVE_INT, "prefix": TEXT}

    def __init__(self, groups: list[str], member_col: str | None = None, cv: int = 5, random_state: int = 0,
                 prefix: str = ""):
        self.groups = groups
        self.member_col = member_col
        self.cv = cv
        self.random_state = random_state
        self.prefix = prefix

    def _stats(self, X: pd.DataFrame, y: np.ndarray) -> tuple[dict[str, pd.DataFrame], float]:
        y = np.asarray(y, dtype=float)
        mask = np.ones(len(X), bool) if self.member_col is None else X[self.member_col].to_numpy(bool)
        prior = float(y[mask].mean()) if mask.any() else float(y.mean())
        stats = {}
        for g in self.groups:
            frame = pd.DataFrame({"g": X[g].to_numpy()[mask], "y": y[mask]})
            stats[g] = frame.groupby("g")["y"].agg(["sum", "count"])
        return stats, prior

    def _encode(self, X: pd.DataFrame, stats: dict[str, pd.DataFrame], prior: float) -> pd.DataFrame:
        out = X.drop(columns=self.groups)
        for g in self.groups:
            total = X[g].map(stats[g]["sum"]).fillna(0.0).to_numpy(float)
            count = X[g].map(stats[g]["count"]).fillna(0.0).to_numpy(float)
            out[f"{self.prefix}{g}_mean"] = np.divide(total, count, out=np.full(len(X), prior), where=count > 0)
            out[f"{self.prefix}{g}_count"] = count
        return out

    def fit(self, X: pd.DataFrame, y) -> "GroupTargetMean":
        self._validate_params()
        self.stats_, self.prior_ = self._stats(X, y)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        return self._encode(X, self.stats_, self.prior_)

    def fit_transform(self, X: pd.DataFrame, y=None, **fit_params) -> pd.DataFrame:
        if y is None:
            raise ValueError("GroupTargetMean needs the target to fit")
        y = np.asarray(y)
        self.fit(X, y)
        parts = []
        splitter = KFold(self.cv, shuffle=True, random_state=self.random_state)
        for inner_train, inner_valid in splitter.split(X):
            stats, prior = self._stats(X.iloc[inner_train], y[inner_train])
            parts.append(self._encode(X.iloc[inner_valid], stats, prior))
        return pd.concat(parts).loc[X.index]


class GroupMedianImputer(Checked, TransformerMixin, BaseEstimator):
    """Fill a numeric column's gaps with its median within a group (e.g. age by title), learned per fold."""

    _parameter_constraints: dict = {"column": TEXT, "by": TEXT}

    def __init__(self, column: str, by: str):
        self.column = column
        self.by = by

    def fit(self, X: pd.DataFrame, y=None) -> "GroupMedianImputer":
        self._validate_params()
        self.medians_ = X.groupby(self.by)[self.column].median()
        self.overall_ = float(X[self.column].median())
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        out = X.copy()
        fill = out[self.by].map(self.medians_).astype(float).fillna(self.overall_)
        out[self.column] = out[self.column].fillna(fill)
        return out


class FitWithoutOutliers(Checked, RegressorMixin, BaseEstimator):
    """Fit the wrapped estimator without the rows ``is_outlier(X, y)`` flags; predict for every row.

    Dropping outliers is a training decision: inside CV only the fold's training rows are filtered, and validation
    rows (outliers included) are still scored, so the CV score stays honest.
    """

    _parameter_constraints: dict = {"estimator": FIT_PREDICT, "is_outlier": [callable]}

    def __init__(self, estimator, is_outlier):
        self.estimator = estimator
        self.is_outlier = is_outlier

    def fit(self, X: pd.DataFrame, y) -> "FitWithoutOutliers":
        self._validate_params()
        y = np.asarray(y)
        keep = ~np.asarray(self.is_outlier(X, y), dtype=bool)
        self.n_dropped_ = int((~keep).sum())
        self.estimator_ = clone(self.estimator).fit(X[keep], y[keep])
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.estimator_.predict(X)


class SkewCorrector(Checked, TransformerMixin, BaseEstimator):
    """log1p of the non-negative columns whose skewness (measured on the fit rows) exceeds ``threshold``.

    The classic skew fix for linear models; sklearn's PowerTransformer does the same job but its per-column
    optimisation costs ~1.7 s per fit on House Prices, which a 25-fit stack cannot afford.
    """

    _parameter_constraints: dict = {"threshold": NON_NEGATIVE}

    def __init__(self, threshold: float = 0.75):
        self.threshold = threshold

    def fit(self, X, y=None) -> "SkewCorrector":
        self._validate_params()
        frame = pd.DataFrame(X)
        skew = frame.skew(numeric_only=True)
        nonneg = frame.min(numeric_only=True) >= 0
        self.columns_ = [c for c in skew.index if abs(skew[c]) > self.threshold and nonneg.get(c, False)]
        return self

    def transform(self, X):
        out = pd.DataFrame(X).copy()
        for c in self.columns_:
            out[c] = np.log1p(out[c].clip(lower=0))
        return out if isinstance(X, pd.DataFrame) else out.to_numpy()


class KnownDuplicates(Checked, ClassifierMixin, BaseEstimator):
    """A binary classifier whose rows that exactly repeat a labelled training row (same ``key``) take that row's
    label - the mean label of the repeats, where they agree by more than ``min_agreement`` - and the wrapped model's
    probability otherwise.

    Why: a test row identical to a labelled one is a lookup, not a prediction; a model smooths it (Disaster Tweets:
    13 % of test tweets repeat a training tweet). Under group folds no validated row has a repeat in its training
    rows, so CV is unchanged; random folds show what the lookup is worth.
    """

    _parameter_constraints: dict = {"estimator": FIT_PREDICT, "key": TEXT, "min_agreement": between(0, 1, "left")}

    def __init__(self, estimator, key: str, min_agreement: float = 0.5):
        self.estimator = estimator
        self.key = key
        self.min_agreement = min_agreement

    def fit(self, X: pd.DataFrame, y) -> "KnownDuplicates":
        self._validate_params()
        y = np.asarray(y, dtype=float)
        self.estimator_ = clone(self.estimator).fit(X, y.astype(int))
        self.classes_ = np.array([0, 1])
        self.labels_ = pd.Series(y).groupby(X[self.key].to_numpy()).mean()
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = self.estimator_.predict_proba(X)[:, 1].astype(float)
        known = X[self.key].map(self.labels_).to_numpy(float)
        use = ~np.isnan(known) & (np.abs(known - 0.5) > self.min_agreement - 0.5)
        p[use] = known[use]
        return np.c_[1 - p, p]

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return binary_labels(self.predict_proba(X)[:, 1])
