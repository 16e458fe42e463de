"""House Prices recipes. Every model predicts log1p(price) inside a TransformedTargetRegressor, so the metric
(RMSLE on prices) is RMSE on the scale the model learns; outliers are dropped from training rows only; the
neighbourhood price level is computed out of fold; scaling and skew correction are fitted per fold."""

from typing import Any

import numpy as np
import pandas as pd
from lightgbm import LGBMRegressor
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import ElasticNet, Lasso, LinearRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder, StandardScaler
from sklearn.svm import SVR

from common.blocks.tabular import FitWithoutOutliers, GroupMedianImputer, GroupTargetMean, SkewCorrector
from common.competition import Recipe
from common.compute import n_threads


def categorical_columns(X: pd.DataFrame) -> list[str]:
    return [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]


def numeric_columns(X: pd.DataFrame) -> list[str]:
    return [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c])]


def huge_cheap_houses(X: pd.DataFrame, log_price: np.ndarray) -> np.ndarray:
    """The two partial sales the data's author warns about: over 4000 sq ft living area sold for under $300k."""
    return (X["GrLivArea"].to_numpy() > 4000) & (log_price < np.log1p(300_000))


def shared_steps(seed: int) -> list[tuple[str, Any]]:
    return [
        ("lot_frontage", GroupMedianImputer("LotFrontage", by="Neighborhood")),
        ("neighborhood_price", GroupTargetMean(["NeighborhoodKey"], random_state=seed)),
    ]


def linear_features(seed: int) -> Pipeline:
    encode = ColumnTransformer([
        ("categories", OneHotEncoder(handle_unknown="ignore", min_frequency=3, sparse_output=False),
         categorical_columns),
        # log1p of skewed areas and counts, then standardise (the penalties need comparable scales).
        ("numbers", make_pipeline(SimpleImputer(strategy="median"), SkewCorrector(), StandardScaler()),
         numeric_columns),
    ])
    return Pipeline([*shared_steps(seed), ("encode", encode)])


def tree_features(seed: int) -> Pipeline:
    encode = ColumnTransformer([
        ("categories", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1,
                                      encoded_missing_value=-1), categorical_columns),
        ("numbers", "passthrough", numeric_columns),
    ])
    return Pipeline([*shared_steps(seed), ("encode", encode)])


def on_log_prices(pipeline: Pipeline) -> TransformedTargetRegressor:
    return TransformedTargetRegressor(regressor=FitWithoutOutliers(pipeline, huge_cheap_houses),
                                      func=np.log1p, inverse_func=np.expm1)


def make_ridge(params: dict[str, Any], seed: int):
    return on_log_prices(Pipeline([*linear_features(seed).steps, ("model", Ridge(alpha=params["alpha"]))]))


def make_lasso(params: dict[str, Any], seed: int):
    model = Lasso(alpha=params["alpha"], max_iter=50_000, random_state=seed)
    return on_log_prices(Pipeline([*linear_features(seed).steps, ("model", model)]))


def make_elasticnet(params: dict[str, Any], seed: int):
    model = ElasticNet(alpha=params["alpha"], l1_ratio=params["l1_ratio"], max_iter=50_000, random_state=seed)
    return on_log_prices(Pipeline([*linear_features(seed).steps, ("model", model)]))


def make_svr(params: dict[str, Any], seed: int):
    model = SVR(C=params["C"], epsilon=params["epsilon"], gamma=params["gamma"])
    return on_log_prices(Pipeline([*linear_features(seed).steps, ("model", model)]))


def make_lgbm(params: dict[str, Any], seed: int):
    model = LGBMRegressor(**params, random_state=seed, n_jobs=n_threads(), deterministic=True,
                          force_row_wise=True, verbose=-1)
    return on_log_prices(Pipeline([*tree_features(seed).steps, ("model", model)]))


def make_meta(params: dict[str, Any], seed: int):
    """Non-negative weights on the members' log-price predictions (a blend that cannot flip a model's sign)."""
    blend = make_pipeline(FunctionTransformer(np.log1p), LinearRegression(positive=True))
    return TransformedTargetRegressor(regressor=blend, func=np.log1p, inverse_func=np.expm1)


RIDGE = {"alpha": 15.0}
LASSO = {"alpha": 0.0007}
ELASTICNET = {"alpha": 0.0012, "l1_ratio": 0.5}
SVR_PARAMS = {"C": 5.0, "epsilon": 0.01, "gamma": 0.0005}
LGBM = {"n_estimators": 2500, "learning_rate": 0.01, "num_leaves": 6, "min_child_samples": 10,
        "subsample": 0.7, "subsample_freq": 1, "colsample_bytree": 0.25, "reg_lambda": 1.0, "max_bin": 200}


def ridge_space(trial) -> dict[str, Any]:
    return {"alpha": trial.suggest_float("alpha", 0.1, 100.0, log=True)}


def lasso_space(trial) -> dict[str, Any]:
    return {"alpha": trial.suggest_float("alpha", 1e-5, 1e-2, log=True)}


def elasticnet_space(trial) -> dict[str, Any]:
    return {"alpha": trial.suggest_float("alpha", 1e-5, 1e-1, log=True),
            "l1_ratio": trial.suggest_float("l1_ratio", 0.05, 1.0)}


def svr_space(trial) -> dict[str, Any]:
    return {"C": trial.suggest_float("C", 0.1, 100.0, log=True),
            "epsilon": trial.suggest_float("epsilon", 1e-3, 0.2, log=True),
            "gamma": trial.suggest_float("gamma", 1e-5, 1e-2, log=True)}


def lgbm_space(trial) -> dict[str, Any]:
    return {
        "n_estimators": trial.suggest_int("n_estimators", 300, 5000, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 0.003, 0.1, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 2, 64, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 3, 60, log=True),
        "subsample": trial.suggest_float("subsample", 0.4, 1.0),
        "subsample_freq": 1,
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.1, 1.0),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 30.0, log=True),
        "max_bin": 200,
    }


RECIPES: dict[str, Recipe] = {
    "default": Recipe("stack of ridge, lasso, elastic net, SVR and LightGBM: non-negative blend weights fitted on "
                      "out-of-fold predictions of the same folds", make_meta, {"meta": {}},
                      members=("ridge", "lasso", "elasticnet", "svr", "lgbm")),
    "ridge": Recipe("ridge regression, one-hot + skew-corrected scaled features", make_ridge, RIDGE, ridge_space),
    "lasso": Recipe("lasso regression, one-hot + skew-corrected scaled features", make_lasso, LASSO, lasso_space),
    "elasticnet": Recipe("elastic net, one-hot + skew-corrected scaled features", make_elasticnet, ELASTICNET,
                         elasticnet_space),
    "svr": Recipe("RBF support vector regression on the linear features", make_svr, SVR_PARAMS, svr_space),
    "lgbm": Recipe("LightGBM on ordinal-encoded features", make_lgbm, LGBM, lgbm_space),
    "fast": Recipe("stack of ridge and lasso, for tests", make_meta, {"meta": {}}, members=("ridge", "lasso")),
}
