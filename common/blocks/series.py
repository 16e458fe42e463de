"""Building blocks for series x days competitions (Web Traffic): summaries of windows of a Panel."""

import warnings

import numpy as np
import pandas as pd

from common.drift import DriftView
from common.splitters import Panel

SUMMARIES = ("mean", "median", "std", "zeros", "missing", "trend", "weekly", "peak", "change")


def window_summaries(panel: Panel, window: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Per series and per window of ``window`` days (placed back from the last day): summaries of log1p values -
    level, spread, share of zeros and of missing days, trend (slope per week), weekly pattern (spread of the
    day-of-week means), peak over median, and the change of level from the window before. Returns (frame, window
    number counted back from the end (0 = last), series index)."""
    values = np.log1p(np.clip(panel.values.astype(np.float64), 0, None))
    n_series, n_days = values.shape
    count = n_days // window
    if count < 2:
        raise ValueError(f"{n_days} days hold fewer than two windows of {window} days")
    frames, prev_mean = [], None
    weekday = np.asarray(panel.dates.day_of_week)
    for back in reversed(range(count)):
        stop = n_days - back * window
        block = values[:, stop - window:stop]
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-missing windows: NaN summaries, fine for LightGBM
            mean = np.nanmean(block, axis=1)
            days = np.arange(window) - (window - 1) / 2
            centred = block - mean[:, None]
            slope = np.nansum(centred * days, axis=1) / np.sum(days**2) * 7
            by_day = np.stack([np.nanmean(block[:, weekday[stop - window:stop] == d], axis=1) for d in range(7)], 1)
            summary = {
                "mean": mean,
                "median": np.nanmedian(block, axis=1),
                "std": np.nanstd(block, axis=1),
                "zeros": np.nanmean(np.where(np.isnan(block), np.nan, block == 0), axis=1),
                "missing": np.isnan(block).mean(axis=1),
                "trend": slope,
                "weekly": np.nanstd(by_day, axis=1),
                "peak": np.nanmax(block, axis=1) - np.nanmedian(block, axis=1),
                "change": mean - prev_mean if prev_mean is not None else np.full(n_series, np.nan),
            }
        prev_mean = mean
        frames.append((pd.DataFrame(summary), back))
    frame = pd.concat([f for f, _ in frames], ignore_index=True)
    backs = np.concatenate([np.full(n_series, b) for _, b in frames])
    series = np.tile(np.arange(n_series), count)
    return frame, backs, series


def last_window_view(panel: Panel, window: int) -> DriftView:
    """Adversarial validation for forecasting: the last window of every series against its earlier windows,
    folds grouped by series (a series' own level must not give its last window away)."""
    frame, back, series = window_summaries(panel, window)
    count = int(back.max()) + 1
    return DriftView(frame, (back == 0).astype(int), list(frame.columns),
                     f"{len(panel)} series: the last {window} days against the {count - 1} windows of {window} days "
                     f"before (per-series summaries of log1p values)", groups=series)

