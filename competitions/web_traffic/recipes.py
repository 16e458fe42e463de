"""Named forecasting recipes, like AutoGluon presets: plain params plus a factory. Every recipe refits on the
whole history for the test forecast (the newest weeks carry the level the forecast starts from)."""

from typing import Any

from common.competition import Recipe
from competitions.web_traffic.baselines import FIBONACCI_WINDOWS, MedianForecaster
from competitions.web_traffic.blend import Blend
from competitions.web_traffic.global_lgbm import GlobalLGBM

LGBM = {"n_estimators": 400, "learning_rate": 0.05, "num_leaves": 63, "min_child_samples": 200,
        "feature_fraction": 0.8, "stride": 14, "max_cuts": 16, "min_history": 56, "max_rows": 3_000_000,
        "calendar": True}
# max_series: pages sampled per fit - all 145 063 pages of the full competition would cost minutes per epoch;
# 5 000 pages x 8 cut-offs keep a fit near 1 min at any size (the replica's 4 519 pages are all used)
RNN = {"epochs": 3, "hidden": 64, "encoder_days": 112, "batch_size": 256, "learning_rate": 3e-3,
       "samples_per_series": 8, "max_series": 5_000}


# Trailing-window sets the median recipes may be tuned over (a tuple is not an Optuna choice: its name is).
WINDOW_SETS = {"fibonacci": FIBONACCI_WINDOWS, "recent": (7, 11, 18, 30, 48, 78),
               "weeks": (7, 14, 21, 28, 35, 42, 49, 56), "long": (30, 48, 78, 126, 203, 329)}


def median_space(trial) -> dict[str, Any]:
    return {"windows": WINDOW_SETS[trial.suggest_categorical("windows", list(WINDOW_SETS))]}


def weekday_space(trial) -> dict[str, Any]:
    return {**median_space(trial), "weekday": trial.suggest_float("weekday", 0.0, 1.0),
            "weeks": trial.suggest_int("weeks", 2, 16)}


def lgbm_space(trial) -> dict[str, Any]:
    """A trial costs a LightGBM per backtest window (~1-1.5 min each on the replica, 2 cores): tune for hours."""
    return {
        "n_estimators": trial.suggest_int("n_estimators", 100, 1000, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 15, 255, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 20, 1000, log=True),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.4, 1.0),
        "stride": trial.suggest_categorical("stride", [7, 14]),
        "max_cuts": trial.suggest_int("max_cuts", 8, 24),
    }


def rnn_space(trial) -> dict[str, Any]:
    return {
        "hidden": trial.suggest_int("hidden", 32, 128, log=True),
        "epochs": trial.suggest_int("epochs", 2, 6),
        "learning_rate": trial.suggest_float("learning_rate", 1e-3, 1e-2, log=True),
        "encoder_days": trial.suggest_categorical("encoder_days", [56, 112, 224]),
        "samples_per_series": trial.suggest_int("samples_per_series", 4, 16),
    }


def _rnn(params: dict[str, Any], seed: int):
    from competitions.web_traffic.rnn import Seq2SeqForecaster  # torch only when asked for

    return Seq2SeqForecaster(**params, seed=seed)


MEMBERS = {"median": lambda p, seed: MedianForecaster(**p), "lgbm": lambda p, seed: GlobalLGBM(**p, seed=seed),
           "rnn": _rnn}


def _blend(params: dict[str, Any], seed: int) -> Blend:
    members = {name: MEMBERS[name](params.get(name, {}), seed) for name, w in params["weights"].items() if w > 0}
    return Blend(members, params["weights"], params["round"])


RECIPES: dict[str, Recipe] = {
    "median": Recipe("median of the medians of 8 trailing windows (11 to 329 days), the classic public kernel",
                     lambda p, seed: MedianForecaster(**p), {"windows": FIBONACCI_WINDOWS}, median_space,
                     refit=True),
    "weekday": Recipe("median of medians shaped by each page's day-of-week profile (last 8 weeks, half strength)",
                      lambda p, seed: MedianForecaster(**p),
                      {"windows": FIBONACCI_WINDOWS, "weekday": 0.5, "weeks": 8}, weekday_space, refit=True),
    "lgbm": Recipe("one global LightGBM over all pages: direct multi-horizon, log1p visits relative to the page's "
                   "level, L1 loss, trained on 16 past cut-offs", lambda p, seed: GlobalLGBM(**p, seed=seed), LGBM,
                   lgbm_space, refit=True),
    "rnn": Recipe("GRU encoder-decoder on log1p series with page features (the family that won), torch, GPU when "
                  "present", _rnn, RNN, rnn_space, refit=True),
    "default": Recipe("global LightGBM 0.7 + GRU encoder-decoder 0.2 + median of medians 0.1 in log space, "
                      "rounded to whole visits (the blend backtest SMAPE chose on the 3 windows whose models train as "
                      "the final fit does, within the full-size budget; see BENCHMARKS.md)", _blend,
                      {"weights": {"lgbm": 0.7, "rnn": 0.2, "median": 0.1}, "round": True, "lgbm": LGBM,
                       "rnn": RNN, "median": {"windows": FIBONACCI_WINDOWS}}, refit=True),
    "fast": Recipe("for tests: a small LightGBM blended with the median, rounded", _blend,
                   {"weights": {"lgbm": 0.5, "median": 0.5}, "round": True, "median": {"windows": (7, 14, 28)},
                    "lgbm": {"n_estimators": 30, "num_leaves": 15, "max_cuts": 3, "max_rows": 60_000}},
                   refit=True),
}
