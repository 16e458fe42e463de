"""Fold assignment made once per competition, persisted, and reused by every run and every tuning trial.

Comparing two runs is only fair when they were scored on the same folds, so the assignment lives on disk
(``folds/<competition>/<kind>-k<k>.csv``, one fold id per train row) and its hash goes into every run record.
Time-series competitions use backtest windows instead of row folds; they keep the same ``split()`` contract.
"""

import hashlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold

from common import paths
from common.competition import Data
from common.errors import DataError
from common.io import write_csv_atomic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Folds:
    fold: np.ndarray  # fold id of every train row
    path: Path | None
    hash: str

    @property
    def n_splits(self) -> int:
        return int(self.fold.max()) + 1

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for k in range(self.n_splits):
            yield np.flatnonzero(self.fold != k), np.flatnonzero(self.fold == k)

    def __len__(self) -> int:
        return self.n_splits


def folds_hash(fold: np.ndarray) -> str:
    return hashlib.sha256(np.asarray(fold, dtype=np.int64).tobytes()).hexdigest()[:16]


@dataclass(frozen=True)
class RowFolds:
    """K folds over train rows: stratified on the target, grouped, or both.

    ``groups(data)`` returns a group label per row (e.g. duplicate tweets) so related rows never straddle folds.
    The seed is the competition's, not the run's: every run shares one assignment.
    """

    kind: Literal["kfold", "stratified", "group", "stratified-group"] = "stratified"
    groups: Callable[[Data], np.ndarray] | None = None
    seed: int = 42

    def assign(self, data: Data, n_splits: int) -> np.ndarray:
        n = len(data.train)
        if n_splits < 2 or n_splits > n:
            raise DataError(f"cannot make {n_splits} folds from {n} rows")
        y = data.y
        groups = self.groups(data) if self.groups is not None else None
        if self.kind == "kfold":
            splitter = KFold(n_splits, shuffle=True, random_state=self.seed)
        elif self.kind == "stratified":
            splitter = StratifiedKFold(n_splits, shuffle=True, random_state=self.seed)
        elif self.kind == "group":
            splitter = GroupKFold(n_splits, shuffle=True, random_state=self.seed)
        else:
            splitter = StratifiedGroupKFold(n_splits, shuffle=True, random_state=self.seed)
        fold = np.full(n, -1, dtype=np.int64)
        for k, (_, valid) in enumerate(splitter.split(np.zeros(n), y, groups)):
            fold[valid] = k
        return fold

    def split(self, data: Data, n_splits: int, name: str) -> Folds:
        """Load the persisted assignment for this competition and k, or create and persist it."""
        path = paths.folds_dir(name) / f"{self.kind}-k{n_splits}.csv"
        ids = data.train[data.id_col].to_numpy()
        if path.is_file():
            stored = pd.read_csv(path)
            if list(stored.columns) != [data.id_col, "fold"] or len(stored) != len(ids) or \
                    not np.array_equal(stored[data.id_col].to_numpy(), ids):
                raise DataError(f"{path} was made for different train data; delete it to create new folds")
            fold = stored["fold"].to_numpy(dtype=np.int64)
            log.info("reusing folds %s", path)
        else:
            fold = self.assign(data, n_splits)
            write_csv_atomic(path, pd.DataFrame({data.id_col: ids, "fold": fold}))
            log.info("created folds %s", path)
        return Folds(fold, path, folds_hash(fold))
