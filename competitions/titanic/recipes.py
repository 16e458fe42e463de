"""Titanic recipes: plain named presets of a model factory, its params and its search space.

Every model is one Pipeline: group survival rates (cross-fitted), age imputation by title, encoding, then the model,
so each CV fold learns all of it from its own training rows.
"""

from typing import Any

import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import VotingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from common.blocks.tabular import GroupMedianImputer, GroupTargetMean
from common.competition import Recipe, binary_labels
from common.compute import n_threads
from competitions.titanic.features import CATEGORICAL, NUMERIC


class WomenChildrenRule(TransformerMixin, BaseEstimator):
    """Flags for the women-and-children-first pattern: boys whose family's women and children all survived, and
    women whose family's women and children all died (rates come from the fitted GroupTargetMean)."""

    def fit(self, X: pd.DataFrame, y=None) -> "WomenChildrenRule":
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        out = X.copy()
        known = out["FamilyKey_count"] > 0
        out["BoyFamilySurvived"] = ((out["Title"] == "Master") & known & (out["FamilyKey_mean"] == 1)).astype(int)
        out["WomanFamilyDied"] = ((out["Sex"] == "female") & known & (out["FamilyKey_mean"] == 0)).astype(int)
        return out


class WcgRule(ClassifierMixin, BaseEstimator):
    """The classic Titanic baseline as an estimator, so it is cross-validated like any model."""

    def fit(self, X: pd.DataFrame, y) -> "WcgRule":
        self.family_ = GroupTargetMean(["FamilyKey"], member_col="IsWomanOrChild").fit(X, y)
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        flags = WomenChildrenRule().transform(self.family_.transform(X))
        alive = ((flags["Sex"] == "female") & (flags["WomanFamilyDied"] == 0)) | (flags["BoyFamilySurvived"] == 1)
        p = alive.to_numpy(float)
        return np.c_[1 - p, p]

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return binary_labels(self.predict_proba(X)[:, 1])


GROUP_FEATURES = ["FamilyKey_mean", "FamilyKey_count", "TicketKey_mean", "TicketKey_count",
                  "BoyFamilySurvived", "WomanFamilyDied"]


def preprocessing(seed: int) -> list[tuple[str, Any]]:
    encode = ColumnTransformer(
        [
            ("categories", OneHotEncoder(handle_unknown="ignore", sparse_output=False), CATEGORICAL),
            ("numbers", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
             NUMERIC + GROUP_FEATURES),
        ],
        remainder="drop",
    )
    return [
        ("family", GroupTargetMean(["FamilyKey"], member_col="IsWomanOrChild", random_state=seed)),
        ("ticket", GroupTargetMean(["TicketKey"], random_state=seed)),
        ("rule", WomenChildrenRule()),
        ("age", GroupMedianImputer("Age", by="Title")),
        ("encode", encode),
    ]


def make_logreg(params: dict[str, Any], seed: int) -> Pipeline:
    return Pipeline([*preprocessing(seed), ("model", LogisticRegression(C=params["C"], max_iter=2000))])


def make_lgbm(params: dict[str, Any], seed: int) -> Pipeline:
    model = LGBMClassifier(**params, random_state=seed, n_jobs=n_threads(), deterministic=True, force_row_wise=True,
                           verbose=-1)
    return Pipeline([*preprocessing(seed), ("model", model)])


def make_blend(params: dict[str, Any], seed: int) -> VotingClassifier:
    """Soft vote of the linear and the boosted model; each member fits its own preprocessing."""
    members = [("logreg", make_logreg(params["logreg"], seed)), ("lgbm", make_lgbm(params["lgbm"], seed))]
    weights = [params["weight_logreg"], 1 - params["weight_logreg"]]
    return VotingClassifier(members, voting="soft", weights=weights)


LOGREG = {"C": 0.1}
LGBM = {
    "n_estimators": 300, "learning_rate": 0.03, "num_leaves": 8, "min_child_samples": 15, "subsample": 0.8,
    "subsample_freq": 1, "colsample_bytree": 0.7, "reg_lambda": 2.0,
}


def logreg_space(trial) -> dict[str, Any]:
    return {"C": trial.suggest_float("C", 1e-3, 10.0, log=True)}


def lgbm_space(trial) -> dict[str, Any]:
    return {
        "n_estimators": trial.suggest_int("n_estimators", 50, 800, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 0.005, 0.3, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 2, 64, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 2, 80, log=True),
        "subsample": trial.suggest_float("subsample", 0.4, 1.0),
        "subsample_freq": 1,
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.3, 1.0),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 30.0, log=True),
    }


RECIPES: dict[str, Recipe] = {
    "default": Recipe("soft blend of logistic regression and LightGBM on family/ticket survival features",
                      make_blend, {"logreg": LOGREG, "lgbm": LGBM, "weight_logreg": 0.6}),
    "logreg": Recipe("logistic regression on the engineered features", make_logreg, LOGREG, logreg_space),
    "lgbm": Recipe("LightGBM on the engineered features", make_lgbm, LGBM, lgbm_space),
    "rule": Recipe("women-and-children-first rule: women live and men die, except boys whose family's women and "
                   "children lived and women whose family's women and children died", lambda params, seed: WcgRule()),
    "fast": Recipe("logistic regression, for tests and smoke runs", make_logreg, {"C": 0.3}),
}
