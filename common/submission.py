"""Submissions built from the sample submission's ids and column order, validated as Kaggle would, written
atomically. A submission that Kaggle would reject is refused here, before anything is written."""

import hashlib
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from common import paths
from common.competition import SubmissionSpec
from common.errors import FileSystemError, SubmissionError, cell, os_error_parts
from common.io import write_bytes_atomic

log = logging.getLogger(__name__)


def check_finite(raw_predictions: np.ndarray, what: str = "test predictions") -> None:
    """Refuse NaN/inf in raw model output before a decode step (a threshold, a rounding) could hide it."""
    raw = np.asarray(raw_predictions, dtype=float)
    bad = int((~np.isfinite(raw)).sum())
    if bad:
        raise SubmissionError(f"{bad} of {raw.size} {what} are NaN or infinite; refusing to write a submission")


def build(spec: SubmissionSpec, sample: pd.DataFrame, ids, values) -> pd.DataFrame:
    """Align predictions (one per test id) to the sample submission; refuse NaN, missing or duplicate ids."""
    ids = np.asarray(ids)
    values = np.asarray(values)
    if values.ndim != 1 or len(values) != len(ids):
        raise SubmissionError(f"got {values.shape} predictions for {len(ids)} test ids")
    if values.dtype.kind in "fc":
        n_nan = int(np.isnan(values).sum())
        if n_nan:
            raise SubmissionError(f"{n_nan} of {len(values)} predictions are NaN; refusing to write a submission")
    pred = pd.Series(values, index=ids)
    if pred.index.duplicated().any():
        raise SubmissionError(f"duplicate test ids, e.g. {cell(pred.index[pred.index.duplicated()][0])}")
    wanted = sample[spec.id_col]
    missing = ~wanted.isin(pred.index)
    if missing.any():
        raise SubmissionError(f"{int(missing.sum())} ids of the sample submission have no prediction, "
                              f"e.g. {cell(wanted[missing].iloc[0])}")
    sub = sample.copy()
    aligned = pred.reindex(wanted.to_numpy()).to_numpy()
    if spec.dtype == "int":
        if not np.all(np.equal(np.mod(aligned.astype(float), 1), 0)):
            raise SubmissionError(f"{spec.value_col} must be whole numbers")
        aligned = aligned.astype(np.int64)
    else:
        aligned = aligned.astype(float)
    sub[spec.value_col] = aligned
    validate(sub, sample, spec)
    return sub


def validate(sub: pd.DataFrame, sample: pd.DataFrame, spec: SubmissionSpec) -> None:
    """Everything Kaggle checks, plus the value domain: columns, order, row count, ids, dtype, NaN."""
    if list(sub.columns) != list(sample.columns):
        raise SubmissionError(f"columns {list(sub.columns)} differ from the sample's {list(sample.columns)}")
    if len(sub) != len(sample):
        raise SubmissionError(f"{len(sub)} rows; the sample submission has {len(sample)}")
    ids, wanted = pd.Index(sub[spec.id_col]), pd.Index(sample[spec.id_col])
    # The sample's ids in its order is what Kaggle wants; only other ids need the costly checks that say what is
    # wrong (for Web Traffic's 9 million ids, 0.03 s against 13 s)
    if not ids.equals(wanted):
        if ids.has_duplicates:
            raise SubmissionError(f"{spec.id_col} repeats, e.g. {cell(ids[ids.duplicated()][0])}")
        if not ids.sort_values().equals(wanted.sort_values()):
            missing = wanted.difference(ids)
            raise SubmissionError(f"{spec.id_col} values differ from the sample submission's: {len(missing)} "
                                  f"missing (e.g. {list(missing[:3])}), {len(ids.difference(wanted))} unknown")
        raise SubmissionError(f"{spec.id_col} values are in another order than the sample submission's")
    values = sub[spec.value_col]
    if values.isna().any():
        raise SubmissionError(f"{int(values.isna().sum())} {spec.value_col} values are missing")
    if pd.api.types.is_float_dtype(values) and not np.isfinite(values.to_numpy()).all():
        raise SubmissionError(f"{int((~np.isfinite(values.to_numpy())).sum())} {spec.value_col} values are infinite")
    if spec.dtype == "int" and not pd.api.types.is_integer_dtype(values):
        raise SubmissionError(f"{spec.value_col} must be integers, got {values.dtype}")
    if not pd.api.types.is_numeric_dtype(values):
        raise SubmissionError(f"{spec.value_col} must be numeric, got {values.dtype}")
    if spec.allowed is not None:
        bad = ~values.isin(spec.allowed)
        if bad.any():
            raise SubmissionError(f"{spec.value_col} must be one of {spec.allowed}, got {cell(values[bad].iloc[0])}")
    if spec.bounds is not None:
        low, high = spec.bounds
        if (low is not None and (values < low).any()) or (high is not None and (values > high).any()):
            raise SubmissionError(f"{spec.value_col} must lie in [{low}, {high}]; "
                                  f"got {values.min()} .. {values.max()}")


def write_validated(sub: pd.DataFrame, sample: pd.DataFrame, spec: SubmissionSpec, path: Path) -> tuple[Path, str]:
    """The one way a submission reaches disk: validated as Kaggle would, written atomically; returns the path and
    the sha256 that submit.py later checks."""
    validate(sub, sample, spec)
    data = sub.to_csv(index=False, lineterminator="\n").encode("utf-8")
    write_bytes_atomic(path, data)
    return Path(path), hashlib.sha256(data).hexdigest()


def forecast_for_keys(forecast: np.ndarray, series: np.ndarray, dates: pd.DatetimeIndex, key_series: pd.Series,
                      key_dates: pd.Series) -> np.ndarray:
    """The forecast value of each key row (series x day), looked up without per-row Python: a key-file competition
    (``<page>_<date>`` -> Id) maps its series x horizon forecast to submission rows with this."""
    row = pd.Index(series).get_indexer(key_series)
    col = pd.DatetimeIndex(dates).get_indexer(pd.DatetimeIndex(pd.to_datetime(key_dates)))
    bad = (row < 0) | (col < 0)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise SubmissionError(f"{int(bad.sum())} key rows name a series or day that was not forecast, e.g. "
                              f"{cell(key_series.iloc[first])} on {key_dates.iloc[first]}")
    return forecast_at(forecast, row, col)


def forecast_at(forecast: np.ndarray, row: np.ndarray, col: np.ndarray, missing: float | None = None) -> np.ndarray:
    """``forecast[row, col]`` per key row; rows of series that were not forecast (-1) get ``missing`` (None:
    refused)."""
    unknown = np.asarray(row) < 0
    if (np.asarray(col) < 0).any() or (unknown.any() and missing is None):
        raise SubmissionError(f"{int(unknown.sum() + (np.asarray(col) < 0).sum())} key rows name a series or day "
                              "that was not forecast")
    out = np.asarray(forecast)[np.where(unknown, 0, row), col].astype(np.float64)
    out[unknown] = missing if missing is not None else np.nan
    return out


def publish(run_submission: Path, name: str) -> Path:
    """Copy a run's validated submission to ``submissions/<name>.csv`` (the newest; every run keeps its own). When
    the copy fails the run is already whole: the line says so, or the user would train it again for nothing."""
    target = paths.submission_file(name)
    try:
        write_bytes_atomic(target, Path(run_submission).read_bytes())
    except OSError as exc:
        where, reason, hint = os_error_parts(exc, then="copy it")
        raise FileSystemError(f"the run is written, with its submission: {paths.shown(Path(run_submission))} "
                              f"(submit.py sends it from there; nothing needs training again), but the copy to "
                              f"{where} failed: {reason}; {hint}") from exc
    log.info("submission copied to %s", target)
    return target
