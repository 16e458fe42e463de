"""Features of a global forecaster: one row per (series, forecast day) at a cut-off, built from the history
before the cut-off only.

Everything is relative to each series' own level (the median of medians, log1p), so one model serves pages with 3
and with 3 million visits a day; the target is the day's log1p visits minus that level. Built with numpy over all
series at once: the full competition (145 063 pages x 60 days) is 8.7 million rows.
"""

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from common.blocks.series import nan_median, nan_quantile
from competitions.web_traffic.baselines import median_of_medians, weekday_profile

YEAR = 364  # a year back on the same weekday
LEVEL_WINDOWS = (7, 14, 28, 56, 112, 224)
STATIC = ("project", "access", "agent")


@dataclass(frozen=True)
class Cut:
    """The history before ``end`` (a position in the panel's days) and the days ``end + gap .. + horizon`` after."""

    end: int
    gap: int
    horizon: int


def _window(logged: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Days [start, stop) clipped to the panel (missing days outside it come back as NaN columns)."""
    lo, hi = max(start, 0), max(min(stop, logged.shape[1]), 0)
    part = logged[:, lo:hi]
    if hi - lo == stop - start:
        return part
    out = np.full((logged.shape[0], stop - start), np.nan, dtype=np.float32)
    if hi > lo:
        out[:, lo - start:hi - start] = part
    return out


def series_features(logged: np.ndarray, dates: pd.DatetimeIndex, cut: Cut, codes: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """Per-series features at a cut-off: (level, feature matrix, names, weekday profile)."""
    with warnings.catch_warnings():  # all-missing series give NaN features, which LightGBM handles
        warnings.simplefilter("ignore", RuntimeWarning)
        return _series_features(logged, dates, cut, codes)


def _series_features(logged: np.ndarray, dates: pd.DatetimeIndex, cut: Cut, codes: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    history = logged[:, :cut.end]
    level = median_of_medians(history)
    seen = ~np.isnan(level)
    level = np.where(seen, level, 0).astype(np.float32)
    cols, names = [], []
    for w in LEVEL_WINDOWS:
        cols.append(nan_median(history[:, -w:]) - level)
        names.append(f"median_{w}")
    recent = history[:, -56:]
    cols += [nan_median(history[:, -3:]) - level, nan_quantile(history[:, -28:], 0.25) - level,
             nan_quantile(history[:, -28:], 0.75) - level]
    names += ["median_3", "q25_28", "q75_28"]
    cols += [np.nanmean(history[:, -7:], axis=1) - level,
             np.nanstd(recent, axis=1), np.nanmax(recent, axis=1) - level,
             np.mean(recent == 0, axis=1), np.mean(np.isnan(recent), axis=1),
             history[:, -1] - level, level]
    names += ["mean_7", "std_56", "max_56", "zero_share_56", "missing_share_56", "last", "level"]
    first_seen = np.argmax(~np.isnan(history), axis=1)
    cols.append(np.where(np.isnan(history).all(axis=1), 0, cut.end - first_seen).astype(np.float32))
    names.append("history_days")
    # a year before: how the level moved from the weeks before the cut-off to the forecast window
    before = nan_median(_window(logged, cut.end - YEAR - 56, cut.end - YEAR))
    during = nan_median(_window(logged, cut.end + cut.gap - YEAR, cut.end + cut.gap + cut.horizon - YEAR))
    cols += [during - before, before - level]
    names += ["year_ago_change", "year_ago_level"]
    profile = weekday_profile(history, dates[:cut.end].day_of_week.to_numpy())
    matrix = np.column_stack([np.asarray(c, dtype=np.float32) for c in cols] + [codes.astype(np.float32)])
    return level, matrix, names + list(STATIC), profile


def day_features(logged: np.ndarray, dates: pd.DatetimeIndex, cut: Cut, days: pd.DatetimeIndex,
                 series_rows: np.ndarray, steps: np.ndarray, level: np.ndarray, profile: np.ndarray,
                 year_base: np.ndarray, calendar: bool = False) -> tuple[np.ndarray, list[str]]:
    """Per-(series, day) features for the chosen rows: forecast step, weekday, the weekday offset, the day a year
    before (relative to that year's level), day of year."""
    target = cut.end + cut.gap + steps  # position of the forecast day (may lie beyond the panel)
    dow = days.day_of_week.to_numpy()[steps]
    ago = target - YEAR
    inside = (ago >= 0) & (ago < cut.end)
    year_ago = np.full(len(series_rows), np.nan, dtype=np.float32)
    year_ago[inside] = logged[series_rows[inside], ago[inside]] - year_base[series_rows[inside]]
    cols = [cut.gap + steps, dow, profile[series_rows, dow], year_ago]
    names = ["step", "weekday", "weekday_offset", "year_ago_day"]
    if calendar:  # day of year: only safe when training targets cover the forecast's season in an earlier year
        cols.append(days.day_of_year.to_numpy()[steps])
        names.append("day_of_year")
    return np.column_stack([np.asarray(c, dtype=np.float32) for c in cols]), names


def cut_rows(logged: np.ndarray, dates: pd.DatetimeIndex, cut: Cut, codes: np.ndarray, calendar: bool = False
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """The feature rows of one cut-off, every series x every forecast day: (X, level per row, series per row, step
    per row, names)."""
    level, per_series, names, profile = series_features(logged, dates, cut, codes)
    days = pd.date_range(dates[0] + pd.Timedelta(days=cut.end + cut.gap), periods=cut.horizon)
    series_rows = np.repeat(np.arange(logged.shape[0]), cut.horizon)
    steps = np.tile(np.arange(cut.horizon), logged.shape[0])
    year_base = nan_median(_window(logged, cut.end - YEAR - 56, cut.end - YEAR))
    per_day, day_names = day_features(logged, dates, cut, days, series_rows, steps, level, profile, year_base,
                                      calendar)
    X = np.hstack([per_series[series_rows], per_day])
    return X, level[series_rows], series_rows, steps, names + day_names
