"""A weighted blend of forecasters, with integer rounding: visits are whole numbers, and on a page with 0 or 1
visits a day SMAPE punishes 0.4 against 0 with the full 200 %, so rounding pays where counts are small (measured on
the backtest: see BENCHMARKS.md)."""

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone

from common.splitters import ForecastTask


def round_visits(forecast: np.ndarray) -> np.ndarray:
    return np.round(forecast).astype(np.float32)


class Blend(RegressorMixin, BaseEstimator):
    """``members``: name -> forecaster; ``weights``: name -> weight (normalised). Averages in log1p space, where the
    members' errors are alike in size for small and large pages."""

    def __init__(self, members: dict, weights: dict[str, float], round: bool = True):
        self.members = members
        self.weights = weights
        self.round = round

    def fit(self, task: ForecastTask, y=None) -> "Blend":
        used = {n: w for n, w in self.weights.items() if w > 0}
        unknown = sorted(set(used) - set(self.members))
        if unknown:
            raise ValueError(f"blend weights name unknown members {unknown}; members are {sorted(self.members)}")
        self.fitted_ = {n: clone(self.members[n]).fit(task, y) for n in used}
        return self

    def predict(self, task: ForecastTask) -> np.ndarray:
        total = sum(self.weights[n] for n in self.fitted_)
        logged = sum(self.weights[n] / total * np.log1p(m.predict(task)) for n, m in self.fitted_.items())
        forecast = np.clip(np.expm1(logged), 0, None).astype(np.float32)
        return round_visits(forecast) if self.round else forecast
