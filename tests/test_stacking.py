"""Stacking: the meta-model that scores fold k never saw fold k's rows."""

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import LinearRegression

from common.cv import cross_validate
from common.splitters import row_folds
from common.stacking import prediction_frame, stack_cv


class RecordingMeta(RegressorMixin, BaseEstimator):
    seen: list[set] = []

    def fit(self, X, y):
        RecordingMeta.seen.append(set(X.index))
        self.model_ = LinearRegression(positive=True).fit(X, y)
        return self

    def predict(self, X):
        return self.model_.predict(X)


def test_meta_model_is_fitted_without_the_fold_it_scores():
    rng = np.random.default_rng(0)
    n = 300
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    y = 2 * X["a"].to_numpy() + rng.normal(scale=0.1, size=n)
    fold = np.arange(n) % 5
    folds = row_folds(fold)

    def rmse(t, p):
        return float(np.sqrt(np.mean((t - p) ** 2)))

    good = cross_validate(LinearRegression, X[["a"]], y, folds, rmse, X_test=X[["a"]].head(7), progress=False)
    noise = cross_validate(LinearRegression, X[["b"]], y, folds, rmse, X_test=X[["b"]].head(7), progress=False)
    RecordingMeta.seen = []
    stacked = stack_cv({"good": good, "noise": noise}, RecordingMeta, y, folds, rmse, progress=False)
    for seen, (train_idx, valid_idx) in zip(RecordingMeta.seen, folds.pairs(), strict=True):
        assert seen == set(train_idx) and not seen & set(valid_idx)
    assert stacked.mean <= noise.mean and stacked.mean < 0.2
    assert set(stacked.members) == {"good", "noise"}
    assert stacked.test_pred.shape == (7,)
    assert list(prediction_frame(stacked.members).columns) == ["good", "noise"]


class ColumnsMeta(RegressorMixin, BaseEstimator):
    """Predicts its ``flag`` column, so the test can see the passed-through values arrive row for row."""

    columns: list[list[str]] = []

    def fit(self, X, y):
        ColumnsMeta.columns.append(list(X.columns))
        return self

    def predict(self, X):
        return X["flag"].to_numpy(dtype=float)


def test_passthrough_features_reach_the_meta_model_beside_the_members_row_for_row():
    rng = np.random.default_rng(1)
    n = 100
    X = pd.DataFrame({"a": rng.normal(size=n)}, index=np.arange(1000, 1000 + n))  # an index that is not 0..n-1
    y = X["a"].to_numpy()
    folds = row_folds(np.arange(n) % 5)

    def rmse(t, p):
        return float(np.sqrt(np.mean((t - p) ** 2)))

    member = cross_validate(LinearRegression, X, y, folds, rmse, X_test=X.head(4), progress=False)
    flag = pd.DataFrame({"flag": np.arange(n) % 3}, index=X.index)
    ColumnsMeta.columns = []
    stacked = stack_cv({"m": member}, ColumnsMeta, y, folds, rmse, progress=False, features=flag,
                       features_test=flag.head(4))
    assert ColumnsMeta.columns == [["m", "flag"]] * 5
    np.testing.assert_array_equal(stacked.oof, np.arange(n) % 3)
    np.testing.assert_array_equal(stacked.test_pred, np.arange(4) % 3)
