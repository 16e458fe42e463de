"""LightGBM's trees compiled for prediction (lleaves): the same values as LightGBM's own predict, in chunks, and
LightGBM itself wherever lleaves is missing or cannot compile."""

import importlib.util
import logging
import sys

import lightgbm as lgb
import numpy as np
import pytest
from test_web_traffic import synthetic_panel

from common.blocks import compiled_trees
from common.splitters import ForecastTask
from competitions.web_traffic.global_lgbm import GlobalLGBM

from conftest import skip_or_fail


@pytest.fixture
def lleaves_installed() -> None:
    """The tests that compile need lleaves: `make setup` installs it wherever llvmlite 0.44 has wheels (Python <
    3.14), so there CI fails without it instead of skipping; the fall-backs to LightGBM are tested everywhere."""
    if importlib.util.find_spec("lleaves") is None:
        reason = "lleaves is not installed (make setup installs it)"
        if sys.version_info < (3, 14):
            skip_or_fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def booster_and_rows() -> tuple[lgb.Booster, np.ndarray]:
    """An L1 model with categorical and missing values, as Web Traffic's (weekday, project; NaN year-ago days)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(6_000, 6)).astype(np.float32)
    X[:, 4] = rng.integers(0, 7, len(X))
    X[:, 5] = rng.integers(0, 3, len(X))
    X[rng.random(X.shape) < 0.1] = np.nan
    X[:, 4:] = np.nan_to_num(X[:, 4:])
    y = np.nan_to_num(X[:, 0]) * 2 + (X[:, 4] >= 5) + np.sin(np.nan_to_num(X[:, 1])) + rng.normal(0, 0.3, len(X))
    model = lgb.LGBMRegressor(objective="l1", n_estimators=60, num_leaves=31, verbose=-1, random_state=0)
    model.fit(X, y, categorical_feature=[4, 5])
    return model.booster_, X


def compile_all(monkeypatch, chunk: int = 1_000) -> None:
    monkeypatch.setattr(compiled_trees, "COMPILE_FROM_ROWS", 0)
    monkeypatch.setattr(compiled_trees, "CHUNK_ROWS", chunk)


def test_compiled_trees_predict_what_lightgbm_predicts(booster_and_rows, monkeypatch, caplog, lleaves_installed):
    booster, X = booster_and_rows
    compile_all(monkeypatch)  # 6 chunks of 1 000 rows
    with caplog.at_level(logging.INFO, logger=compiled_trees.__name__):
        compiled = compiled_trees.booster_predictor(booster, len(X), threads=2)(X)
    assert "compiled 60 LightGBM trees" in caplog.text
    expected = booster.predict(X)
    assert compiled.shape == expected.shape
    assert np.abs(compiled - expected).max() < 1e-12  # the trees' values summed in blocks: the 15th digit at most


def test_few_rows_are_predicted_by_lightgbm_itself(booster_and_rows, caplog):
    booster, X = booster_and_rows
    with caplog.at_level(logging.INFO, logger=compiled_trees.__name__):
        assert np.array_equal(compiled_trees.booster_predictor(booster, len(X), threads=2)(X), booster.predict(X))
    assert "compiled" not in caplog.text


def test_without_lleaves_lightgbm_predicts_and_says_so_once(booster_and_rows, monkeypatch, caplog):
    booster, X = booster_and_rows
    compile_all(monkeypatch)
    monkeypatch.setitem(sys.modules, "lleaves", None)  # what `import lleaves` meets where it is not installed
    compiled_trees._lleaves.cache_clear()
    try:
        with caplog.at_level(logging.INFO, logger=compiled_trees.__name__):
            for _ in range(2):
                predicted = compiled_trees.booster_predictor(booster, len(X), threads=2)(X)
                assert np.array_equal(predicted, booster.predict(X))
    finally:
        compiled_trees._lleaves.cache_clear()
    assert caplog.text.count("lleaves is not installed: LightGBM predicts") == 1


def test_a_model_lleaves_cannot_compile_is_predicted_by_lightgbm(booster_and_rows, monkeypatch, caplog,
                                                                 lleaves_installed):
    """As lleaves 1.3.0 meets llvmlite 0.45: an AttributeError at compile."""
    import lleaves

    booster, X = booster_and_rows
    compile_all(monkeypatch)

    def fails(self, **kwargs):
        raise AttributeError("module 'llvmlite.binding' has no attribute 'PassManagerBuilder'")

    monkeypatch.setattr(lleaves.Model, "compile", fails)
    assert np.array_equal(compiled_trees.booster_predictor(booster, len(X), threads=2)(X), booster.predict(X))
    [line] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "could not compile" in line and "PassManagerBuilder" in line and "LightGBM predicts" in line


def test_the_global_forecaster_forecasts_the_same_with_compiled_trees(monkeypatch, caplog, lleaves_installed):
    panel, _ = synthetic_panel(n=80, days=300)
    task = ForecastTask(panel.until(272), panel.dates[-28:])
    model = GlobalLGBM(n_estimators=40, max_cuts=4, stride=7).fit(task)
    plain = model.predict(task)
    compile_all(monkeypatch)
    with caplog.at_level(logging.INFO, logger=compiled_trees.__name__):
        compiled = model.predict(task)
    assert "compiled 40 LightGBM trees" in caplog.text
    assert np.allclose(compiled, plain, rtol=1e-6, atol=0)  # float32 forecasts of the same log values
