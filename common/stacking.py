"""Stacking on out-of-fold predictions of the same persisted folds, with no fold scoring itself.

Level 1: every member recipe is cross-validated on the competition's folds, giving one out-of-fold prediction per
train row and fold-averaged test predictions. Level 2: the meta-model is cross-validated on those predictions over
the *same* folds, so the meta-model that scores fold k was fitted on the other folds' rows only - its weights never
see the labels it is judged on. This is ``cross_validate`` again, on a different feature frame.
"""

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from common.cv import CVResult, cross_validate
from common.predictions import prediction_columns


def prediction_frame(results: dict[str, CVResult], test: bool = False) -> pd.DataFrame | None:
    """One column per member (per class for multiclass probabilities)."""
    columns: dict[str, np.ndarray] = {}
    for name, result in results.items():
        values = result.test_pred if test else result.oof
        if values is None:
            return None
        columns.update(prediction_columns(name, values))
    return pd.DataFrame(columns)


def with_features(frame: pd.DataFrame | None, features: pd.DataFrame | None) -> pd.DataFrame | None:
    """The members' predictions with the passed-through feature columns beside them (row for row)."""
    if frame is None or features is None or features.shape[1] == 0:
        return frame
    return pd.concat([frame, features.reset_index(drop=True)], axis=1)


def stack_cv(members: dict[str, CVResult], make_meta: Callable[[], Any], y: np.ndarray, folds,
             score: Callable[[np.ndarray, np.ndarray], float], progress: bool = True, on_fold=None,
             explain=None, features: pd.DataFrame | None = None,
             features_test: pd.DataFrame | None = None) -> CVResult:
    """``explain``: as for ``cross_validate`` - here it says which members the meta-model relied on.
    ``features``/``features_test``: columns of the train/test features the meta-model gets too (passthrough)."""
    result = cross_validate(make_meta, with_features(prediction_frame(members), features), y, folds, score,
                            with_features(prediction_frame(members, test=True), features_test), on_fold=on_fold,
                            progress=progress, explain=explain)
    result.members = dict(members)
    return result
