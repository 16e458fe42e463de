"""The classic public baselines: flat medians of trailing windows, optionally shaped by a day-of-week profile.

They predict from the history alone (nothing is fitted), so they cost seconds at any scale and give the other
recipes a floor to beat. Everything runs in log1p space, where a median of medians is robust to the spikes that
dominate Wikipedia traffic.
"""

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin

from common.blocks.series import nan_median
from common.constraints import POSITIVE_INT, Checked, between
from common.splitters import ForecastTask, Panel

# The windows of the public "median of medians" kernel (roughly Fibonacci, 11 days to 11 months)
FIBONACCI_WINDOWS = (11, 18, 30, 48, 78, 126, 203, 329)


def log_history(panel: Panel) -> np.ndarray:
    return np.log1p(panel.values.astype(np.float32))


def median_of_medians(logged: np.ndarray, windows=FIBONACCI_WINDOWS) -> np.ndarray:
    """The median over ``windows`` of each window's median, per series (log space; NaN where all missing).

    Windows longer than the history are cut to it, so short histories still get a level."""
    length = logged.shape[1]
    medians = np.stack([nan_median(logged[:, -min(w, length):]) for w in windows], axis=1)
    return nan_median(medians)


def weekday_profile(logged: np.ndarray, days_of_week: np.ndarray, weeks: int = 8) -> np.ndarray:
    """Each series' log offset per day of week (series x 7) over its last ``weeks`` weeks, centred so the offsets
    of a week sum to about zero; 0 where a series has no data on that weekday."""
    recent, dow = logged[:, -7 * weeks:], days_of_week[-7 * weeks:]
    level = nan_median(recent)
    profile = np.stack([nan_median(recent[:, dow == d]) for d in range(7)], axis=1) - level[:, None]
    profile = np.nan_to_num(profile)
    return profile - profile.mean(axis=1, keepdims=True)


class MedianForecaster(Checked, RegressorMixin, BaseEstimator):
    """Flat at the median of medians of trailing windows; with ``weekday`` > 0 shaped by the series' day-of-week
    profile times ``weekday`` (a shrinkage: 0 flat, 1 the full profile). Series with no history get 0."""

    _parameter_constraints: dict = {"windows": [tuple, list], "weekday": between(0, 1), "weeks": POSITIVE_INT}

    def _check_values(self) -> None:
        if not self.windows or not all(isinstance(w, int) and not isinstance(w, bool) and w >= 1
                                       for w in self.windows):
            raise ValueError(f"windows must be one or more lengths in days, each 1 or more; got {self.windows!r}")

    def __init__(self, windows: tuple[int, ...] = FIBONACCI_WINDOWS, weekday: float = 0.0, weeks: int = 8):
        self.windows = windows
        self.weekday = weekday
        self.weeks = weeks

    def fit(self, history: Panel, y=None) -> "MedianForecaster":
        self._validate_params()
        return self  # nothing to learn: the forecast is read off each series' own history

    def predict(self, task: ForecastTask) -> np.ndarray:
        logged = log_history(task.history)
        level = np.nan_to_num(median_of_medians(logged, tuple(self.windows)))
        forecast = np.repeat(level[:, None], len(task.dates), axis=1)
        if self.weekday:
            profile = weekday_profile(logged, task.history.dates.day_of_week.to_numpy(), self.weeks)
            forecast = forecast + self.weekday * profile[:, task.dates.day_of_week.to_numpy()]
        return np.clip(np.expm1(forecast), 0, None).astype(np.float32)
