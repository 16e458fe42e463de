import numpy as np
import pandas as pd
import pytest

from common.blocks.tabular import GroupMedianImputer, GroupTargetMean


def test_group_mean_never_sees_the_rows_own_label_when_fitting():
    # Each row is its own group: any leak of the row's label would show up as count=1 and mean=y.
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"grp": np.arange(100).astype(str)})
    y = rng.integers(0, 2, 100)
    train_encoded = GroupTargetMean(["grp"]).fit_transform(X, y)
    assert (train_encoded["grp_count"] == 0).all()
    assert abs(np.corrcoef(train_encoded["grp_mean"], y)[0, 1]) < 0.3
    # At predict time a row sees every training row of its group - here, itself.
    test_encoded = GroupTargetMean(["grp"]).fit(X, y).transform(X)
    assert (test_encoded["grp_count"] == 1).all()
    assert np.array_equal(test_encoded["grp_mean"].to_numpy(), y.astype(float))


def test_group_mean_counts_only_members_and_falls_back_to_prior():
    X = pd.DataFrame({"fam": ["a", "a", "a", "b"], "member": [1, 1, 0, 1]})
    y = np.array([1, 0, 1, 1])
    enc = GroupTargetMean(["fam"], member_col="member").fit(X, y)
    out = enc.transform(pd.DataFrame({"fam": ["a", "c"], "member": [0, 0]}))
    assert out["fam_mean"].tolist() == [0.5, enc.prior_]  # the non-member's label does not count
    assert out["fam_count"].tolist() == [2, 0]
    assert enc.prior_ == 2 / 3
    assert "fam" not in out.columns


def test_group_median_imputer_learns_from_fit_rows_only():
    fit_rows = pd.DataFrame({"age": [10.0, 20.0, np.nan, 40.0], "title": ["a", "a", "a", "b"]})
    imp = GroupMedianImputer("age", by="title").fit(fit_rows)
    out = imp.transform(pd.DataFrame({"age": [np.nan, np.nan, 5.0], "title": ["a", "zzz", "b"]}))
    assert out["age"].tolist() == [15.0, 20.0, 5.0]


def test_skew_corrector_logs_only_skewed_non_negative_columns_seen_at_fit():
    from common.blocks.tabular import SkewCorrector

    rng = np.random.default_rng(0)
    fit_rows = pd.DataFrame({"area": rng.lognormal(5, 1, 500), "normal": rng.normal(0, 1, 500),
                             "negative_skewed": -rng.lognormal(1, 1, 500)})
    corrector = SkewCorrector().fit(fit_rows)
    assert corrector.columns_ == ["area"]
    out = corrector.transform(pd.DataFrame({"area": [np.e - 1], "normal": [5.0], "negative_skewed": [-3.0]}))
    assert out.iloc[0].tolist() == pytest.approx([1.0, 5.0, -3.0])


def test_fit_without_outliers_drops_training_rows_only():
    from sklearn.linear_model import LinearRegression

    from common.blocks.tabular import FitWithoutOutliers

    X = pd.DataFrame({"x": np.arange(20, dtype=float)})
    y = 2 * X["x"].to_numpy()
    y[5] = 1000.0  # an outlier that would bend the fit

    def is_outlier(frame, target):
        return target > 500

    model = FitWithoutOutliers(LinearRegression(), is_outlier).fit(X, y)
    assert model.n_dropped_ == 1
    assert model.predict(X).tolist() == pytest.approx((2 * X["x"]).tolist())  # the outlier row is still predicted
