"""Adversarial validation (scripts/drift.py) on the real files of every kind of competition, and what run records
say their models relied on."""

import json

import numpy as np
import pandas as pd
import pytest

import competitions
from common import data, drift, runner
from common.blocks.series import last_window_view
from common.errors import DataError
from common.metrics import Metric
from common.splitters import Panel

from conftest import env_for, run_script

TITANIC = competitions.get("titanic")


def test_a_shifted_feature_is_found_and_named():
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"size": rng.normal(0, 1, 800), "colour": rng.choice(list("abc"), 800),
                          "name": [f"n{i}" for i in range(800)]})
    test = pd.DataFrame({"size": rng.normal(1.5, 1, 400), "colour": rng.choice(list("abc"), 400),
                         "name": [f"m{i}" for i in range(400)]})
    result = drift.adversarial(drift.tabular_view(train, test), "synthetic")
    assert result.auc > 0.8 and result.top[0][0] == "size" and "strong drift" in result.verdict
    assert any(note.startswith("name (a key") for note in result.left_out)  # one value per row: not a feature
    same = drift.adversarial(drift.tabular_view(train, train.sample(frac=0.5, random_state=1)), "same")
    assert same.auc < 0.6


def test_titanic_drift_check_is_saved_and_shown(data_dir, kit_home):
    env = env_for(kit_home, data_dir=data_dir)
    result = run_script("drift.py", "titanic", env=env)
    assert result.returncode == 0, result.stderr
    saved = json.loads((kit_home / "reports" / "drift" / "titanic.json").read_text())
    assert 0.4 < saved["auc"] < 0.65 and len(saved["fold_aucs"]) == 5  # test passengers look like train ones
    assert saved["rows"] == {"train side": 891, "test side": 418}
    assert any(n.startswith("FamilyKey (a key") for n in saved["left_out"])
    assert "adversarial ROC AUC" in result.stdout and saved["top"][0][0] in result.stdout
    runner.train(TITANIC, "lgbm", n_folds=3, progress=False)
    report = run_script("leaderboard.py", "titanic", env=env)
    assert report.returncode == 0, report.stderr
    md = (kit_home / "reports" / "leaderboard.md").read_text()
    assert f"Adversarial ROC AUC **{saved['auc']:.3f}" in md and "Top drifting features" in md


def test_a_damaged_drift_file_is_skipped_with_a_warning(kit_home, caplog):
    path = drift.result_path("titanic")
    path.parent.mkdir(parents=True)
    path.write_text('{"auc": "high"}')
    assert drift.load("titanic") is None and "lacks auc" in caplog.text and str(path) in caplog.text
    path.write_text("[1, 2")
    assert drift.load("titanic") is None


def test_text_drift_uses_the_words(data_dir, kit_home):
    result, path = drift.check(competitions.get("disaster-tweets"))
    assert path.is_file() and 0.4 < result.auc < 0.6
    assert any(name.startswith("word: ") for name, _ in result.top)
    assert "TF-IDF terms" in result.what


def test_series_drift_compares_the_last_window_with_the_earlier_ones():
    days = pd.date_range("2020-01-01", periods=360)
    rng = np.random.default_rng(3)
    values = rng.poisson(50, (300, 360)).astype(np.float32)
    values[:150, -60:] *= 3  # half the series jump in the last window
    view = last_window_view(Panel(np.arange(300), days, values), 60)
    # 6 windows: the last against 4, the oldest only the one before the second (it has no change of level)
    assert view.X.shape == (300 * 5, 9) and view.is_test.sum() == 300 and len(np.unique(view.groups)) == 300
    assert not view.X["change"].isna().any()
    result = drift.adversarial(view, "synthetic")
    assert result.auc > 0.7 and result.top[0][0] in ("change", "mean", "median", "peak")
    # the same noise without the jump: no drift to see (with the oldest window in, its missing change read as 0.57)
    still = rng.poisson(50, (300, 360)).astype(np.float32)
    calm = drift.adversarial(last_window_view(Panel(np.arange(300), days, still), 60), "synthetic")
    assert calm.auc < 0.55 and "no meaningful drift" in calm.verdict
    with pytest.raises(DataError, match="the drift check needs three"):
        last_window_view(Panel(np.arange(300), days[:179], still[:, :179]), 60)


def test_web_traffic_drift_on_the_replica(data_dir, kit_home):
    result, _ = drift.check(competitions.get("web-traffic"))
    assert "the last 60 days against the" in result.what and result.rows["test side"] == 4519
    assert 0.5 < result.auc < 1



def test_digit_drift_on_the_real_images_and_a_shifted_copy(data_dir, kit_home):
    """The real test images are drawn like train (Kaggle split MNIST at random); the same view must see test
    images moved 3 pixels right, which a block of ink is there to catch."""
    digits = competitions.get("digit-recognizer")
    result, path = drift.check(digits)
    assert path.is_file() and result.rows == {"train side": 42000, "test side": 28000}
    assert 0.45 < result.auc < 0.55 and all(name.startswith("ink ") for name, _ in result.top)
    _, dataset = data.load(digits)
    X, X_test = digits.features(dataset)
    images = X_test[:5000].reshape(-1, 28, 28)
    moved = np.roll(images, 3, axis=2).reshape(len(images), -1)
    shifted = drift.adversarial(digits.drift(dataset, X[:5000], moved), "moved")
    assert shifted.auc > 0.9 and "strong drift" in shifted.verdict


MSE = Metric("mse", lambda t, p: float(np.mean((t - p) ** 2)), greater_is_better=False)  # an error: lower is better


# -- importance in run records -------------------------------------------------------------------------------------
def test_lightgbm_runs_record_gain_by_feature_name_others_permutation(data_dir, kit_home):
    lgbm, _ = runner.train(TITANIC, "lgbm", n_folds=3, progress=False)
    assert lgbm.importance["kind"] == "gain" and lgbm.importance["folds"] == 3
    names = list(lgbm.importance["features"])
    assert any("Sex" in n or "Title" in n or "IsWomanOrChild" in n for n in names[:5])  # names, not Column_7
    logreg, _ = runner.train(TITANIC, "logreg", n_folds=3, progress=False)
    imp = logreg.importance
    assert imp["kind"] == "permutation" and set(imp["features"]) <= set(runner.prepare(TITANIC, 3).X.columns)
    values = list(imp["features"].values())
    assert values == sorted(values, reverse=True) and values[0] > 0.02  # the model relies on something


def test_a_stacks_importance_names_its_members(data_dir, kit_home):
    record, _ = runner.train(competitions.get("house-prices"), "fast", n_folds=3, progress=False)
    assert set(record.importance["features"]) == {"ridge", "lasso"}


@pytest.mark.parametrize("budget", [0.0])
def test_permutation_importance_stops_at_its_time_budget(budget):
    from sklearn.linear_model import LinearRegression

    from common.importance import permutation

    X = pd.DataFrame(np.random.default_rng(0).normal(size=(50, 6)), columns=list("abcdef"))
    y = X["a"] * 3 + X["b"]
    model = LinearRegression().fit(X, y)
    out = permutation(model, X, y.to_numpy(), MSE, lambda m, x: m.predict(x), MSE.gain, budget_s=budget)
    assert len(out) == 1  # the first column is always measured, then the budget is spent
    full = permutation(model, X, y.to_numpy(), MSE, lambda m, x: m.predict(x), MSE.gain, budget_s=60)
    assert max(full, key=full.get) == "a" and full["a"] > full["b"] > abs(full["c"])


def test_permutation_importance_of_an_array_shuffles_named_column_groups_on_a_row_sample_that_fits_the_budget():
    """Images: a block of pixels is one feature; a slow model is explained on a random subset of the held-out rows
    so that every feature still fits the time budget."""
    import time

    from sklearn.linear_model import LinearRegression

    from common.importance import permutation

    X = np.random.default_rng(1).normal(size=(6000, 6))
    y = 3 * X[:, 0] + 3 * X[:, 1] + X[:, 2]
    model = LinearRegression().fit(X, y)
    seen: list[int] = []

    def slow_predict(m, x):  # 0.2 ms a row: all 6000 rows for 3 groups would take ~11 s
        seen.append(len(x))
        time.sleep(2e-4 * len(x))
        return m.predict(x)

    groups = {"first two": np.array([0, 1]), "third": np.array([2]), "rest": np.array([3, 4, 5])}
    out = permutation(model, X, y, MSE, slow_predict, MSE.gain, budget_s=2.0, groups=groups)
    assert set(out) == set(groups)  # every group measured within the budget
    assert out["first two"] > out["third"] > abs(out["rest"])
    assert 500 <= max(seen[1:]) < 6000  # the pilot, then a sample of the rows, never all of them
    with pytest.raises(TypeError, match="needs groups"):  # an array has no column names to measure by
        permutation(model, X, y, MSE, lambda m, x: m.predict(x), MSE.gain, budget_s=1.0)
