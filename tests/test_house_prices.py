"""House Prices on the real files: data-description semantics, the fast stack end to end, bad input."""


import numpy as np
import pandas as pd
import pytest

import competitions
from common import data, runner
from common.errors import DataError, SubmissionError
from competitions.house_prices import MAX_PRICE, decode, features

HP = competitions.get("house-prices")
SLUG = "house-prices-advanced-regression-techniques"


@pytest.fixture
def hp_copy(mirror_copy):
    return mirror_copy(SLUG)


def test_na_means_none_where_the_description_says_so(data_dir):
    loaded = HP.load(data.fetch(HP))
    none_cols = set(loaded.extras["none_columns"])
    assert {"Alley", "PoolQC", "Fence", "BsmtQual", "GarageType", "FireplaceQu", "MiscFeature"} <= none_cols
    assert "LotFrontage" not in none_cols and "MasVnrArea" not in none_cols
    X, X_test = HP.features(loaded)
    assert (X["Alley"] == "None").sum() == 1369  # every NA alley in train is "no alley access"
    assert X["BsmtQual"].min() == 0  # no basement -> quality 0 on the ordinal scale
    assert X["LotFrontage"].isna().sum() == 259  # truly unknown: left for per-fold imputation
    assert "None" in set(X["MasVnrType"])  # the data's own "None" survives loading
    assert len(X_test) == 1459 and list(X.columns) == list(X_test.columns)


def test_fast_stack_writes_a_valid_submission(data_dir, kit_home):
    record, folder = runner.train(HP, "fast", seed=0, n_folds=3, progress=False)
    assert set(record["cv"]["members"]) == {"ridge", "lasso"}
    for member in record["cv"]["members"].values():
        assert len(member["fold_scores"]) == 3
    assert record["metric"] == {"name": "rmsle", "direction": "minimize"}
    assert 0.09 < record["cv"]["mean"] < 0.16
    oof, test_pred = pd.read_parquet(folder / "oof.parquet"), pd.read_parquet(folder / "test_pred.parquet")
    assert {"oof", "oof_ridge", "oof_lasso"} <= set(oof.columns) and len(oof) == 1460
    assert {"pred", "pred_ridge", "pred_lasso"} <= set(test_pred.columns) and len(test_pred) == 1459
    y = pd.read_csv(data_dir / SLUG / "train.csv")["SalePrice"].to_numpy()
    for name, score in record["cv"]["members"].items():  # the member columns are the members' own predictions
        rows = [oof["fold"].to_numpy() == k for k in range(3)]
        folds = [HP.score(y[r], oof[f"oof_{name}"].to_numpy()[r]) for r in rows]
        assert np.allclose(folds, score["fold_scores"], atol=1e-6)
    sub = pd.read_csv(kit_home / "submissions" / "house-prices.csv")
    sample = pd.read_csv(data_dir / SLUG / "sample_submission.csv")
    assert list(sub.columns) == ["Id", "SalePrice"] and len(sub) == 1459
    assert sub["Id"].tolist() == sample["Id"].tolist()
    assert (sub["SalePrice"] > 10_000).all() and sub["SalePrice"].median() == pytest.approx(160_000, rel=0.2)


def test_linear_members_get_squares_and_quality_interactions_that_lower_their_cv(data_dir):
    """The polynomial columns are computed row by row (a gap stays a gap for the fold's imputer), and on the real
    data they lower ridge's CV: log price is convex in quality and size."""
    from sklearn.model_selection import KFold, cross_val_score

    from competitions.house_prices import recipes

    loaded = HP.load(data.fetch(HP))
    X, X_test = HP.features(loaded)
    wide = features.polynomial(X_test)
    assert len(wide) == len(X_test) and set(X_test.columns) < set(wide.columns)
    gap = X_test["GarageCars"].isna().to_numpy()
    assert gap.any() and wide["GarageCars_sq"].isna().to_numpy()[gap].all()
    assert (wide["QualGarage"].to_numpy()[gap] == 0).all()
    assert np.allclose(wide["OverallQual_sq"], X_test["OverallQual"] ** 2)

    def cv_rmsle(model) -> float:
        def rmsle(fitted, X_valid, y_valid):
            return HP.score(y_valid, fitted.predict(X_valid))
        return cross_val_score(model, X, loaded.y, cv=KFold(5, shuffle=True, random_state=0), scoring=rmsle).mean()

    ridge = recipes.make_ridge(recipes.RIDGE, 0)
    assert ridge.regressor.estimator.steps[0][0] == "polynomial"
    plain = recipes.make_ridge(recipes.RIDGE, 0)
    plain.regressor.estimator.steps.pop(0)  # the same model without the polynomial columns
    assert cv_rmsle(ridge) < cv_rmsle(plain) - 0.0005


def test_outliers_are_dropped_from_training_rows_only(data_dir):
    from competitions.house_prices.recipes import huge_cheap_houses, make_ridge

    loaded = HP.load(data.fetch(HP))
    X, _ = HP.features(loaded)
    y = loaded.y
    assert huge_cheap_houses(X, np.log1p(y)).sum() == 2
    model = make_ridge({"alpha": 15.0}, 0).fit(X, y)
    assert model.regressor_.n_dropped_ == 2
    assert len(model.predict(X)) == len(X)  # but every row is still predicted (and scored in CV)


def test_a_kept_partial_sale_teaches_the_linear_model_the_others_discount(data_dir):
    """Train with one of the two huge partial sales, predict the other: kept with its flag, ridge learns the
    discount; dropped (the classic notebook move), it prices the house as if sold finished."""
    from competitions.house_prices.recipes import RIDGE, make_ridge

    loaded = HP.load(data.fetch(HP))
    X, _ = HP.features(loaded)
    y = loaded.y
    partial = np.flatnonzero(X["HugePartialSale"].to_numpy() == 1)
    assert len(partial) == 2 and (y[partial] < 300_000).all()
    train = np.setdiff1d(np.arange(len(y)), partial[1:])
    errors = {}
    for drop in (True, False):
        model = make_ridge({**RIDGE, "drop_partial_sales": drop}, 0).fit(X.iloc[train], y[train])
        errors[drop] = abs(np.log1p(model.predict(X.iloc[partial[1:]]))[0] - np.log1p(y[partial[1]]))
    assert errors[True] > 1.0 and errors[False] < 0.5 * errors[True]


def test_meta_model_is_fitted_without_sales_no_member_explains():
    from competitions.house_prices.recipes import make_meta

    rng = np.random.default_rng(0)
    price = rng.uniform(1e5, 4e5, 300)
    members = pd.DataFrame({"a": price * rng.lognormal(0, 0.05, 300), "b": price * rng.lognormal(0, 0.1, 300)})
    y = price.copy()
    y[:3] = price[:3] / 4  # sales no member explains
    robust = make_meta({"far": 0.5}, 0).fit(members, y)
    plain = make_meta({}, 0).fit(members, y)
    assert robust.regressor_.n_dropped_ == 3
    ordinary = slice(3, None)
    err = {name: np.sqrt(np.mean((np.log1p(m.predict(members))[ordinary] - np.log1p(y[ordinary])) ** 2))
           for name, m in (("robust", robust), ("plain", plain))}
    assert err["robust"] < err["plain"]


def test_test_columns_differing_from_train_are_one_line(hp_copy):
    test = pd.read_csv(hp_copy / "test.csv", keep_default_na=False)
    test.drop(columns=["PoolQC"]).assign(Extra=1).to_csv(hp_copy / "test.csv", index=False)
    with pytest.raises(DataError, match="test.csv columns differ from train.csv: missing PoolQC; extra Extra"):
        HP.load(data.fetch(HP))


def test_unseen_category_at_test_time_still_predicts(hp_copy, kit_home):
    test = pd.read_csv(hp_copy / "test.csv", keep_default_na=False)
    test.loc[:9, "Neighborhood"] = "Atlantis"
    test.loc[:9, "KitchenQual"] = "Superb"  # unknown on an ordinal scale
    test.to_csv(hp_copy / "test.csv", index=False)
    record, folder = runner.train(HP, "ridge", seed=0, n_folds=3, progress=False)
    sub = pd.read_csv(folder / "submission.csv")
    assert sub["SalePrice"].notna().all() and (sub["SalePrice"] > 0).all()


def test_impossible_predictions_are_clipped_and_nan_refused(data_dir, kit_home, monkeypatch, caplog):
    assert decode(np.array([-5.0, 100.0, 5e20, np.inf])).tolist() == [0.0, 100.0, MAX_PRICE, MAX_PRICE]
    assert "clipped 1 negative price" in caplog.text
    assert "clipped 2 price predictions above $1,000,000,000" in caplog.text

    from sklearn.dummy import DummyRegressor

    class NanRegressor(DummyRegressor):
        def predict(self, X):
            out = super().predict(X).astype(float)
            out[:3] = np.nan
            return out

    monkeypatch.setitem(HP.recipes, "ridge", type(HP.recipes["ridge"])("nan", lambda p, s: NanRegressor(), {}))
    with pytest.raises(SubmissionError, match="NaN"):
        runner.train(HP, "ridge", seed=0, n_folds=3, progress=False)
    assert not (kit_home / "submissions").exists()


def test_description_parser_on_its_own():
    text = "Alley: Type of alley access\n\n       Grvl\tGravel\n       NA \tNo alley access\n\nLotArea: Lot size\n"
    assert features.none_columns(text) == {"Alley"}


def test_a_stack_with_refit_predicts_test_from_members_fitted_on_all_rows(data_dir, kit_home, monkeypatch):
    """The default refits its members on all of train for the test prediction (the test's partial sale then
    learns from both in train); the CV, made by the fold models, is the same either way."""
    import dataclasses

    from common.params import resolve

    prep = runner.prepare(HP, 3)
    plain = runner.run_cv(prep, "fast", {}, 0, progress=False)
    monkeypatch.setitem(HP.recipes, "fast", dataclasses.replace(HP.recipe("fast"), refit=True))
    refitted = runner.run_cv(prep, "fast", {}, 0, progress=False)
    ridge_params = resolve(HP, "fast", {})["members"]["ridge"]
    on_all_rows = HP.recipe("ridge").make_model(ridge_params, 0).fit(prep.X, prep.data.y).predict(prep.X_test)
    assert np.allclose(refitted.members["ridge"].test_pred, on_all_rows)
    assert not np.allclose(plain.members["ridge"].test_pred, on_all_rows)
    assert refitted.fold_scores == plain.fold_scores


def test_flagged_partial_sales_are_priced_by_the_members_that_learned_them():
    """The default's meta-model prices a flagged row by the linear members alone, but only once its training rows
    held a flagged row (then the members of its fold trained on one; otherwise they never learned the flag)."""
    from competitions.house_prices.recipes import make_meta

    rng = np.random.default_rng(0)
    price = rng.uniform(1e5, 4e5, 200)
    members = pd.DataFrame({"ridge": price * rng.lognormal(0, 0.05, 200), "lgbm": price * rng.lognormal(0, 0.05, 200),
                            "HugePartialSale": 0})
    members.loc[:1, "lgbm"] = 6e5  # a tree fitted without the partial sales prices them as mansions
    members.loc[:1, "ridge"] = 1.7e5
    members.loc[:1, "HugePartialSale"] = 1
    y = price.copy()
    y[:2] = 1.8e5
    params = {"far": 0.5, "flagged_from": ["ridge"]}
    meta = make_meta(params, 0).fit(members, y)
    assert meta.regressor_.active_
    pred = meta.predict(members)
    np.testing.assert_allclose(pred[:2], 1.7e5, rtol=1e-9)  # the ridge's price, not the blend's
    ordinary = make_meta({"far": 0.5}, 0).fit(members.drop(columns="HugePartialSale"), y)
    np.testing.assert_allclose(pred[2:], ordinary.predict(members.drop(columns="HugePartialSale"))[2:])
    assert ordinary.predict(members.drop(columns="HugePartialSale"))[0] > 2.5e5  # what the blend alone would say

    unseen = make_meta(params, 0).fit(members.iloc[2:], y[2:])  # no flagged training row: the blend decides
    assert not unseen.regressor_.active_
    assert unseen.predict(members)[0] > 2.5e5
    with pytest.raises(ValueError, match="no column"):
        make_meta({"flagged_from": ["svr"]}, 0).fit(members, y)
    off = make_meta({"far": 0.5, "flagged_from": []}, 0).fit(members, y)  # switched off: the flag is only dropped
    np.testing.assert_allclose(off.predict(members), ordinary.predict(members.drop(columns="HugePartialSale")))


def test_price_per_square_foot_member_scales_with_size_beyond_the_training_houses():
    """Trees on log price cannot price a house larger than any they saw; on log price per square foot the size
    scaling is built in (the default's ``catboost-sqft`` member)."""
    from sklearn.tree import DecisionTreeRegressor

    from competitions.house_prices.recipes import PerSquareFoot

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"GrLivArea": rng.uniform(500, 3000, 400), "OverallQual": rng.integers(1, 11, 400)})
    log_price = np.log(X["GrLivArea"].to_numpy()) + 4.0 + 0.1 * X["OverallQual"].to_numpy()
    new = pd.DataFrame({"GrLivArea": [6000.0, np.nan], "OverallQual": [5, 5]})
    plain = DecisionTreeRegressor(min_samples_leaf=5, random_state=0).fit(X, log_price)
    per_sqft = PerSquareFoot(DecisionTreeRegressor(min_samples_leaf=5, random_state=0)).fit(X, log_price)
    truth = np.log(6000.0) + 4.5
    assert abs(per_sqft.predict(new)[0] - truth) < 0.05
    assert plain.predict(new.fillna(0))[0] < truth - 0.5  # capped at the largest houses it saw
    median = np.median(X["GrLivArea"])
    assert abs(per_sqft.predict(new)[1] - (np.log(median) + 4.5)) < 0.05  # a gap takes the median area
