"""Out-of-fold and test predictions as frames for the run folder, keyed by what was predicted.

Rows: one line per train row (id, target, fold, the prediction or one column per class, a stack's members).
Series x days: one line per series, one column per validated (or forecast) day.
"""

import numpy as np
import pandas as pd

from common.competition import Data
from common.cv import CVResult
from common.splitters import Folds, ForecastTask


def prediction_columns(name: str, values: np.ndarray) -> dict[str, np.ndarray]:
    """``name`` for one prediction per row, ``name_0..name_k`` for class probabilities."""
    if values.ndim == 1:
        return {name: values}
    return {f"{name}_{k}": values[:, k] for k in range(values.shape[1])}


def _by_day(ids: np.ndarray, id_col: str, dates: pd.DatetimeIndex, values: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame(np.asarray(values, dtype=np.float32), columns=[d.date().isoformat() for d in dates])
    frame.insert(0, id_col, ids)
    return frame


def oof_frame(data: Data, folds: Folds, result: CVResult, X) -> pd.DataFrame:
    if folds.fold is None:  # backtest windows: the validated days of every series
        validated = ~np.all(np.isnan(result.oof), axis=0)
        return _by_day(np.asarray(X.series), data.id_col, X.dates[validated], result.oof[:, validated])
    members = {c: v for n, r in result.members.items() for c, v in prediction_columns(f"oof_{n}", r.oof).items()}
    return pd.DataFrame({data.id_col: data.train[data.id_col].to_numpy(), "target": data.y, "fold": folds.fold,
                         **prediction_columns("oof", result.oof), **members})


def test_frame(data: Data, result: CVResult, X_test) -> pd.DataFrame:
    if result.test_pred is None:
        raise ValueError("the CV result holds no test prediction")
    if isinstance(X_test, ForecastTask):
        return _by_day(np.asarray(X_test.history.series), data.id_col, X_test.dates, result.test_pred)
    members = {c: v for n, r in result.members.items()
               if r.test_pred is not None for c, v in prediction_columns(f"pred_{n}", r.test_pred).items()}
    return pd.DataFrame({data.id_col: data.test[data.id_col].to_numpy(),
                         **prediction_columns("pred", result.test_pred), **members})
