"""One LightGBM model for every page: trained on many past cut-offs of the history, it learns how a page's level
moves over the forecast window from its recent medians, trend, zeros, weekday profile, last year's change over the
same weeks and its project / access / agent.

Direct multi-horizon: one row per (page, forecast day) with the step ahead as a feature, so there is no recursion
and no error feedback. The target is log1p visits minus the page's median of medians, with an L1 loss (a median
in log space is what SMAPE rewards). Training rows are sampled to ``max_rows`` (whole pages per cut-off, so
features are computed only for the pages used) so the full competition fits a laptop.
"""

import logging

import lightgbm as lgb
import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin

from common.blocks.compiled_trees import booster_predictor
from common.compute import n_threads
from common.constraints import BOOLEAN, NON_NEGATIVE_INT, POSITIVE, POSITIVE_INT, Checked, at_least, between
from common.errors import UsageError
from common.splitters import ForecastTask
from competitions.web_traffic.baselines import log_history
from competitions.web_traffic.features import Cut, cut_rows

log = logging.getLogger(__name__)

PREDICT_PAGES = 16_384  # pages whose feature rows are built at a time (a million rows of 60-day forecasts)


def static_codes(task: ForecastTask) -> np.ndarray:
    """project / access / agent as integer codes (categorical features); zeros when the panel has none."""
    static = task.history.static
    if static is None:
        return np.zeros((len(task), 3), dtype=np.int32)
    return np.column_stack([static[c].cat.codes.to_numpy() for c in ("project", "access", "agent")])


class GlobalLGBM(Checked, RegressorMixin, BaseEstimator):
    _parameter_constraints: dict = {
        "n_estimators": POSITIVE_INT, "learning_rate": POSITIVE, "num_leaves": at_least(2),
        "min_child_samples": POSITIVE_INT, "feature_fraction": between(0, 1, "right"), "stride": POSITIVE_INT,
        "max_cuts": POSITIVE_INT, "min_history": POSITIVE_INT, "max_rows": POSITIVE_INT, "calendar": BOOLEAN,
        "seed": NON_NEGATIVE_INT,
    }

    def __init__(self, n_estimators: int = 400, learning_rate: float = 0.05, num_leaves: int = 63,
                 min_child_samples: int = 200, feature_fraction: float = 0.8, stride: int = 14,
                 max_cuts: int = 16, min_history: int = 56, max_rows: int = 3_000_000, calendar: bool = True,
                 seed: int = 0):
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.feature_fraction = feature_fraction
        self.stride = stride
        self.max_cuts = max_cuts
        self.min_history = min_history
        self.max_rows = max_rows
        self.calendar = calendar
        self.seed = seed

    def cuts(self, task: ForecastTask) -> list[Cut]:
        """Training cut-offs: the newest leaves exactly gap + horizon known days after it, older ones step back."""
        horizon, gap, length = len(task.dates), task.gap, len(task.history.dates)
        ends = [length - gap - horizon - k * self.stride for k in range(self.max_cuts)]
        return [Cut(end, gap, horizon) for end in ends if end >= self.min_history]

    def fit(self, task: ForecastTask, y=None) -> "GlobalLGBM":
        self._validate_params()
        logged = log_history(task.history)
        codes = static_codes(task)
        cuts = self.cuts(task)
        if not cuts:  # the oldest backtest windows of a long --folds have the shortest history
            need = self.min_history + task.gap + len(task.dates)
            raise UsageError(f"{len(task.history.dates)} days of history are too few for the LightGBM forecaster "
                             f"(one training cut-off needs {need}: min_history {self.min_history}, then the gap "
                             f"and horizon); use fewer --folds, so the oldest window has more history before it")
        rng = np.random.default_rng(self.seed)
        n, horizon = logged.shape[0], cuts[0].horizon
        # at full size a cut-off has millions of (page, day) rows: each cut-off takes its share of max_rows as a
        # random set of whole pages, so features are computed only for the pages it uses
        per_cut = min(n, max(1, self.max_rows // (horizon * len(cuts))))
        parts, targets = [], []
        for cut in cuts:
            pages = np.sort(rng.choice(n, per_cut, replace=False)) if per_cut < n else np.arange(n)
            sub = logged[pages]
            X, level, series, steps, names = cut_rows(sub, task.history.dates, cut, codes[pages],
                                                     self.calendar)
            target = sub[series, cut.end + cut.gap + steps] - level
            known = ~np.isnan(target) & ~np.isnan(sub[:, :cut.end]).all(axis=1)[series]
            parts.append(X[known])
            targets.append(target[known])
        X, target = np.vstack(parts), np.concatenate(targets)
        log.info("global lgbm: %d rows from %d cut-offs, %d features", len(X), len(cuts), X.shape[1])
        self.names_ = names
        self.model_ = lgb.LGBMRegressor(
            objective="l1", n_estimators=self.n_estimators, learning_rate=self.learning_rate,
            num_leaves=self.num_leaves, min_child_samples=self.min_child_samples,
            colsample_bytree=self.feature_fraction,
            subsample=0.8, subsample_freq=1, random_state=self.seed, n_jobs=n_threads(), verbose=-1)
        categorical = [names.index(c) for c in ("project", "access", "agent", "weekday")]
        self.model_.fit(X, target, feature_name=names, categorical_feature=categorical)
        return self

    def predict(self, task: ForecastTask) -> np.ndarray:
        """Pages PREDICT_PAGES at a time, each page's rows alike whatever its neighbours: the full competition's 9
        million rows x 27 features would be 1 GB of features, twice over while they are stacked."""
        logged = log_history(task.history)
        horizon = len(task.dates)
        cut = Cut(len(task.history.dates), task.gap, horizon)
        codes = static_codes(task)
        predict = booster_predictor(self.model_.booster_, len(task) * horizon, n_threads())
        out = np.empty((len(task), horizon), dtype=np.float32)
        for start in range(0, len(task), PREDICT_PAGES):
            pages = slice(start, start + PREDICT_PAGES)
            X, level, _, _, _ = cut_rows(logged[pages], task.history.dates, cut, codes[pages], self.calendar)
            out[pages] = np.clip(np.expm1(level + predict(X)), 0, None).reshape(-1, horizon)
        out[np.isnan(logged).all(axis=1)] = 0  # no history at all: 0
        return out
