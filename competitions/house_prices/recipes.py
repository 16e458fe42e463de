"""House Prices recipes. Every model predicts log1p(price) inside a TransformedTargetRegressor, so the metric
(RMSLE on prices) is RMSE on the scale the model learns; outliers are dropped from training rows only; the
neighbourhood price level is computed out of fold; scaling and skew correction are fitted per fold."""

from typing import Any

import numpy as np
import pandas as pd
from lightgbm import LGBMRegressor
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import ElasticNet, Lasso, LinearRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder, StandardScaler
from sklearn.svm import SVR

from common.blending import FAR_LOG_PRICE, far_from_median
from common.blocks.tabular import FitWithoutOutliers, GroupMedianImputer, GroupTargetMean, SkewCorrector
from common.competition import Recipe
from common.compute import n_threads
from common.constraints import FIT_PREDICT, TEXT, Checked
from competitions.house_prices.features import polynomial


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
    return Pipeline([("polynomial", FunctionTransformer(polynomial)), *shared_steps(seed), ("encode", encode)])


def tree_features(seed: int) -> Pipeline:
    encode = ColumnTransformer([
        ("categories", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1,
                                      encoded_missing_value=-1), categorical_columns),
        ("numbers", "passthrough", numeric_columns),
    ])
    return Pipeline([*shared_steps(seed), ("encode", encode)])


def on_log_prices(pipeline: Pipeline, params: dict[str, Any] | None = None) -> TransformedTargetRegressor:
    """``drop_partial_sales`` (default true): fit without the two huge partial sales. Linear members keep them and
    learn their discount through the HugePartialSale flag instead (repeated CV in BENCHMARKS.md)."""
    drop = (params or {}).get("drop_partial_sales", True)
    regressor = FitWithoutOutliers(pipeline, huge_cheap_houses) if drop else pipeline
    return TransformedTargetRegressor(regressor=regressor, func=np.log1p, inverse_func=np.expm1)


def make_ridge(params: dict[str, Any], seed: int):
    return on_log_prices(Pipeline([*linear_features(seed).steps, ("model", Ridge(alpha=params["alpha"]))]), params)


def make_lasso(params: dict[str, Any], seed: int):
    model = Lasso(alpha=params["alpha"], max_iter=50_000, random_state=seed)
    return on_log_prices(Pipeline([*linear_features(seed).steps, ("model", model)]), params)


def make_elasticnet(params: dict[str, Any], seed: int):
    model = ElasticNet(alpha=params["alpha"], l1_ratio=params["l1_ratio"], max_iter=50_000, random_state=seed)
    return on_log_prices(Pipeline([*linear_features(seed).steps, ("model", model)]), params)


def make_svr(params: dict[str, Any], seed: int):
    model = SVR(C=params["C"], epsilon=params["epsilon"], gamma=params["gamma"])
    return on_log_prices(Pipeline([*linear_features(seed).steps, ("model", model)]), params)


def make_lgbm(params: dict[str, Any], seed: int):
    model = LGBMRegressor(**params, random_state=seed, n_jobs=n_threads(), deterministic=True,
                          force_row_wise=True, verbose=-1)
    return on_log_prices(Pipeline([*tree_features(seed).steps, ("model", model)]))


def make_gbr(params: dict[str, Any], seed: int):
    """scikit-learn's gradient boosting with the Huber loss: the robust-loss member (partial sales and other odd
    sales pull its trees less than squared error does)."""
    model = GradientBoostingRegressor(**params, loss="huber", random_state=seed)
    impute = SimpleImputer(strategy="median")  # test.csv has gaps train.csv has not; these trees take no NaN
    return on_log_prices(Pipeline([*tree_features(seed).steps, ("impute", impute), ("model", model)]))


class PerSquareFoot(Checked, RegressorMixin, BaseEstimator):
    """Learn log price per square foot of ``area`` (log price minus log area), predict log price.

    Trees cannot extrapolate: a tree on log price caps what a larger house can be worth at the leaves it has seen.
    On price per square foot the size scaling is built in, and its mistakes differ from the plain trees' - a weaker
    model alone (BENCHMARKS.md), a useful one in the stack. Sits inside ``on_log_prices``, so ``y`` is log price.
    """

    _parameter_constraints: dict = {"estimator": FIT_PREDICT, "area": TEXT}

    def __init__(self, estimator, area: str = "GrLivArea"):
        self.estimator = estimator
        self.area = area

    def _log_area(self, X: pd.DataFrame) -> np.ndarray:
        """A gap takes the training rows' median area, an area under 1 sq ft counts as 1 (log stays finite)."""
        area = X[self.area].to_numpy(dtype=float)
        return np.log(np.maximum(np.where(np.isnan(area), self.median_area_, area), 1.0))

    def fit(self, X: pd.DataFrame, y) -> "PerSquareFoot":
        self._validate_params()
        if self.area not in X.columns:
            raise ValueError(f"area {self.area!r} is not a column of the features; use an area column such as "
                             f"GrLivArea, TotalBsmtSF or LotArea")
        self.median_area_ = float(np.nanmedian(X[self.area].to_numpy(dtype=float)))
        self.estimator_ = clone(self.estimator).fit(X, np.asarray(y) - self._log_area(X))
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.estimator_.predict(X) + self._log_area(X)


def catboost_pipeline(params: dict[str, Any], seed: int) -> Pipeline:
    from catboost import CatBoostRegressor  # imported here: only these recipes need it

    model = CatBoostRegressor(**params, random_seed=seed, thread_count=n_threads(), verbose=0,
                              allow_writing_files=False)
    return Pipeline([*tree_features(seed).steps, ("model", model)])


def make_catboost(params: dict[str, Any], seed: int):
    """CatBoost: ordered boosting and symmetric trees overfit less on 1 458 rows; the strongest single member."""
    return on_log_prices(catboost_pipeline(params, seed))


def make_catboost_sqft(params: dict[str, Any], seed: int):
    """CatBoost on log price per square foot of ``area`` (``PerSquareFoot``)."""
    tree_params = {k: v for k, v in params.items() if k != "area"}
    return on_log_prices(PerSquareFoot(catboost_pipeline(tree_params, seed), params["area"]))


def far_from_members(distance: float):
    """Rows whose log price is more than ``distance`` from the members' median prediction: sales no member could
    explain (the partial sales), which would otherwise set the blend weights for every ordinary house."""
    def is_outlier(predictions: pd.DataFrame, log_price: np.ndarray) -> np.ndarray:
        return far_from_median(np.log1p(predictions.to_numpy()), log_price, distance)
    return is_outlier


class FlaggedFromLearners(Checked, RegressorMixin, BaseEstimator):
    """Rows whose ``flag`` column is set take the mean log price of ``learners`` - the members that keep such rows
    in training and can learn what the flag means - instead of ``estimator``'s blend.

    The partial sales are two rows in train: the tree members are fitted without them and price the test's third
    one like a mansion, and the blend's weights are fitted without them too (``far``), so nothing in the blend
    speaks for them. Only where the meta-model's training rows hold a flagged row - the same rows the members of
    its fold trained on - did the learners see one; elsewhere the blend decides. The test prediction averages the
    fold meta-models (as for every stack), each deciding as in its fold. Works on log prices inside
    ``make_meta``'s target transform; the flag column never reaches ``estimator``.
    """

    _parameter_constraints: dict = {"estimator": FIT_PREDICT, "flag": TEXT, "learners": [tuple, list]}

    def __init__(self, estimator, flag: str, learners: tuple[str, ...] | list[str]):
        self.estimator = estimator
        self.flag = flag
        self.learners = learners

    def _split(self, X: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        missing = [c for c in (self.flag, *self.learners) if c not in X.columns]
        if missing:
            raise ValueError(f"the meta-model's input has no column(s) {missing}: the flag must be passed through "
                             f"and the learners must be members of the stack")
        return X.drop(columns=[self.flag]), X[self.flag].to_numpy() > 0

    def fit(self, X: pd.DataFrame, y) -> "FlaggedFromLearners":
        self._validate_params()
        members, flagged = self._split(X)
        self.active_ = bool(flagged.any()) and len(self.learners) > 0
        self.estimator_ = clone(self.estimator).fit(members, y)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        members, flagged = self._split(X)
        pred = np.asarray(self.estimator_.predict(members), dtype=float).copy()
        if self.active_ and flagged.any():
            pred[flagged] = np.log1p(members.loc[flagged, list(self.learners)].to_numpy()).mean(axis=1)
        return pred


def make_meta(params: dict[str, Any], seed: int):
    """Non-negative weights on the members' log-price predictions (a blend that cannot flip a model's sign), fitted
    on the out-of-fold rows; with ``far`` set, without the rows that far from the members' median (log scale); with
    ``flagged_from`` set, the flagged partial sales priced by those members alone (``FlaggedFromLearners``)."""
    blend = make_pipeline(FunctionTransformer(np.log1p), LinearRegression(positive=True))
    if params.get("far") is not None and not params["far"] > 0:
        raise ValueError(f"far must be above 0 (a distance in log price; null keeps every row), got {params['far']}")
    if params.get("far") is not None:
        blend = FitWithoutOutliers(blend, far_from_members(params["far"]))
    if "flagged_from" in params:  # the stack passes the flag through; an empty list only drops it
        blend = FlaggedFromLearners(blend, PARTIAL_SALE_FLAG, params["flagged_from"])
    return TransformedTargetRegressor(regressor=blend, func=np.log1p, inverse_func=np.expm1)


PARTIAL_SALE_FLAG = "HugePartialSale"
LINEAR_MEMBERS = ("ridge", "lasso", "elasticnet", "svr")
# drop_partial_sales: fit without the two huge partial sales (true), or keep them and let the HugePartialSale flag
# carry their discount (false, inside the default stack: BENCHMARKS.md, House Prices).
RIDGE = {"alpha": 15.0, "drop_partial_sales": True}
LASSO = {"alpha": 0.0004, "drop_partial_sales": True}  # 0.0007 before the polynomial columns
ELASTICNET = {"alpha": 0.0012, "l1_ratio": 0.5, "drop_partial_sales": True}
SVR_PARAMS = {"C": 5.0, "epsilon": 0.01, "gamma": 0.0005, "drop_partial_sales": True}
LGBM = {"n_estimators": 2500, "learning_rate": 0.01, "num_leaves": 6, "min_child_samples": 10,
        "subsample": 0.7, "subsample_freq": 1, "colsample_bytree": 0.25, "reg_lambda": 1.0, "max_bin": 200}
GBR = {"n_estimators": 3000, "learning_rate": 0.05, "max_depth": 4, "max_features": "sqrt", "min_samples_leaf": 15,
       "min_samples_split": 10}
CATBOOST = {"iterations": 3000, "learning_rate": 0.03, "depth": 6, "l2_leaf_reg": 3.0}
CATBOOST_SQFT = {**CATBOOST, "area": "GrLivArea"}


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
    "default": Recipe("stack of ridge, lasso, elastic net, SVR, LightGBM, Huber gradient boosting and CatBoost on "
                      "price and on price per square foot: "
                      "non-negative blend weights fitted on out-of-fold predictions of the same folds, without the "
                      "sales no member explains; the linear members learn the partial sales' discount and price "
                      "them; the test prediction from members refitted on all rows",
                      make_meta, {"meta": {"far": FAR_LOG_PRICE, "flagged_from": list(LINEAR_MEMBERS)}, "members": {
                          name: {**params, "drop_partial_sales": False} for name, params in
                          zip(LINEAR_MEMBERS, (RIDGE, LASSO, ELASTICNET, SVR_PARAMS), strict=True)}},
                      members=(*LINEAR_MEMBERS, "lgbm", "gbr", "catboost", "catboost-sqft"), refit=True,
                      passthrough=(PARTIAL_SALE_FLAG,)),
    "ridge": Recipe("ridge regression, one-hot + skew-corrected scaled features", make_ridge, RIDGE, ridge_space),
    "lasso": Recipe("lasso regression, one-hot + skew-corrected scaled features", make_lasso, LASSO, lasso_space),
    "elasticnet": Recipe("elastic net, one-hot + skew-corrected scaled features", make_elasticnet, ELASTICNET,
                         elasticnet_space),
    "svr": Recipe("RBF support vector regression on the linear features", make_svr, SVR_PARAMS, svr_space),
    "lgbm": Recipe("LightGBM on ordinal-encoded features", make_lgbm, LGBM, lgbm_space),
    "gbr": Recipe("gradient boosting with the Huber loss on ordinal-encoded features", make_gbr, GBR),
    "catboost": Recipe("CatBoost on ordinal-encoded features", make_catboost, CATBOOST),
    "catboost-sqft": Recipe("CatBoost on log price per square foot of living area (``area``), ordinal-encoded "
                            "features", make_catboost_sqft, CATBOOST_SQFT),
    "stack5": Recipe("stack of ridge, lasso, elastic net, SVR and LightGBM (the default until issue 14)", make_meta,
                     {"meta": {}}, members=("ridge", "lasso", "elasticnet", "svr", "lgbm")),
    "fast": Recipe("stack of ridge and lasso, for tests", make_meta, {"meta": {}}, members=("ridge", "lasso")),
}
