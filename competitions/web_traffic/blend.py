"""A weighted blend of forecasters, with integer rounding: visits are whole numbers, and on a page with 0 or 1
visits a day SMAPE punishes 0.4 against 0 with the full 200 %, so rounding pays where counts are small (measured on
the backtest: see BENCHMARKS.md)."""

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone

from common import blending
from common.constraints import BOOLEAN, Checked
from common.splitters import ForecastTask


class Blend(Checked, RegressorMixin, BaseEstimator):
    """``members``: name -> forecaster; ``weights``: name -> weight (normalised). Averages in log1p space, where the
    members' errors are alike in size for small and large pages."""

    _parameter_constraints: dict = {"members": [dict], "weights": [dict], "round": BOOLEAN}

    def _check_values(self) -> None:
        bad = {n: w for n, w in self.weights.items()
               if isinstance(w, bool) or not isinstance(w, int | float) or not w >= 0}
        if bad:
            raise ValueError(f"blend weights must be numbers from 0 up; got {bad}")
        used = {n: w for n, w in self.weights.items() if w > 0}
        if not used:
            raise ValueError(f"blend weights need at least one member above 0; got {self.weights}")
        unknown = sorted(set(used) - set(self.members))
        if unknown:
            raise ValueError(f"blend weights name unknown members {unknown}; members are {sorted(self.members)}")

    def __init__(self, members: dict, weights: dict[str, float], round: bool = True):
        self.members = members
        self.weights = weights
        self.round = round

    def fit(self, task: ForecastTask, y=None) -> "Blend":
        self._validate_params()
        used = {n: w for n, w in self.weights.items() if w > 0}
        self.fitted_ = {n: clone(self.members[n]).fit(task, y) for n in used}
        return self

    def predict(self, task: ForecastTask) -> np.ndarray:
        """The members' forecasts averaged as the cross-run ensembles average them (``common.blending``): in log1p
        space with positive weights, so the blend is never negative."""
        weights = np.array([self.weights[n] for n in self.fitted_], dtype=float)
        blend = blending.Blend(weights / weights.sum(), rounded=self.round)
        forecast = blend.apply([m.predict(task) for m in self.fitted_.values()], blending.LOG1P)
        return forecast.astype(np.float32)
