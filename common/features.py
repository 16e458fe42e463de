"""Leak-safe, scikit-learn compatible transformers shared by competitions.

Anything that learns from labels or from the data's distribution is a transformer fitted inside the CV pipeline,
so each fold learns it from its own training rows only.
"""

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.model_selection import KFold


class GroupTargetRate(TransformerMixin, BaseEstimator):
    """Target mean of the *other* labelled rows sharing a group (family, ticket, neighbourhood...).

    Adds ``<group>_rate`` (mean target of labelled members, the prior when none is known) and ``<group>_known``
    (how many were labelled) and drops the raw group column. With ``member_col`` only rows where it is true count
    as members (e.g. the women and children of a Titanic family).

    Leak safety: at ``fit_transform`` time training rows are encoded by inner cross-fitting, so a row never sees its
    own label (the trap of naive and leave-one-out target encoding); at ``transform`` time, rows see every training
    row - exactly what a test passenger sees from the labelled train set.
    """

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
            known = X[g].map(stats[g]["count"]).fillna(0.0).to_numpy(float)
            rate = np.divide(total, known, out=np.full(len(X), prior), where=known > 0)
            out[f"{self.prefix}{g}_rate"] = rate
            out[f"{self.prefix}{g}_known"] = known
        return out

    def fit(self, X: pd.DataFrame, y) -> "GroupTargetRate":
        self.stats_, self.prior_ = self._stats(X, y)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        return self._encode(X, self.stats_, self.prior_)

    def fit_transform(self, X: pd.DataFrame, y=None, **fit_params) -> pd.DataFrame:
        if y is None:
            raise ValueError("GroupTargetRate needs the target to fit")
        y = np.asarray(y)
        self.fit(X, y)
        parts = []
        splitter = KFold(self.cv, shuffle=True, random_state=self.random_state)
        for inner_train, inner_valid in splitter.split(X):
            stats, prior = self._stats(X.iloc[inner_train], y[inner_train])
            parts.append(self._encode(X.iloc[inner_valid], stats, prior))
        return pd.concat(parts).loc[X.index]


class GroupMedianImputer(TransformerMixin, BaseEstimator):
    """Fill a numeric column's gaps with its median within a group (e.g. age by title), learned per fold."""

    def __init__(self, column: str, by: str):
        self.column = column
        self.by = by

    def fit(self, X: pd.DataFrame, y=None) -> "GroupMedianImputer":
        self.medians_ = X.groupby(self.by)[self.column].median()
        self.overall_ = float(X[self.column].median())
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        out = X.copy()
        fill = out[self.by].map(self.medians_).astype(float).fillna(self.overall_)
        out[self.column] = out[self.column].fillna(fill)
        return out
