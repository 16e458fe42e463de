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
from common.errors import DataError, UsageError
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

    def check_n_splits(self, data: Data, n_splits: int, groups: np.ndarray | None) -> None:
        """Refuse a fold count this data cannot honour, naming the range that works (a usage error, not a data
        one: the data is fine, the option is not)."""
        n = len(data.train)
        limits = {"rows": n}
        if self.kind in ("stratified", "stratified-group"):
            limits["rows of the smallest class"] = int(pd.Series(data.y).value_counts().min())
        if groups is not None:
            limits["groups"] = int(pd.Series(groups).nunique())
        what, most = min(limits.items(), key=lambda kv: kv[1])
        if not 2 <= n_splits <= most:
            raise UsageError(f"cannot make {n_splits} {self.kind} folds of {n} train rows: there are only {most} "
                             f"{what}; choose --folds between 2 and {min(most, 20)}")

    def assign(self, data: Data, n_splits: int) -> np.ndarray:
        n = len(data.train)
        y = data.y
        groups = self.groups(data) if self.groups is not None else None
        self.check_n_splits(data, n_splits, groups)
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

    def path(self, n_splits: int, name: str) -> Path:
        return paths.folds_dir(name) / f"{self.kind}-k{n_splits}.csv"

    def check_persisted(self, data: Data, n_splits: int, name: str) -> None:
        """Refuse data that no longer fits the persisted folds (without creating any)."""
        path = self.path(n_splits, name)
        if path.is_file():
            _stored_folds(path, data.id_col, data.train[data.id_col].to_numpy(), n_splits)

    def split(self, data: Data, n_splits: int, name: str) -> Folds:
        """Load the persisted assignment for this competition and k, or create and persist it.

        The stored assignment is matched to train rows by id, so the same rows in another order keep their folds.
        """
        path = self.path(n_splits, name)
        ids = data.train[data.id_col].to_numpy()
        if path.is_file():
            fold = _stored_folds(path, data.id_col, ids, n_splits)
            log.info("reusing folds %s", path)
        else:
            fold = self.assign(data, n_splits)
            write_csv_atomic(path, pd.DataFrame({data.id_col: ids, "fold": fold}))
            log.info("created folds %s", path)
        return Folds(fold, path, folds_hash(fold))


def _stored_folds(path: Path, id_col: str, ids: np.ndarray, n_splits: int) -> np.ndarray:
    """The persisted fold of every current train row; says whether the folds file or the train data changed."""
    try:
        stored = pd.read_csv(path)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"folds file {path} is damaged ({str(exc).splitlines()[0]}); delete it to make new "
                        "folds (runs made on the old folds are then no longer comparable with new ones)") from exc
    damaged = None
    if list(stored.columns) != [id_col, "fold"]:
        damaged = f"its columns are {list(stored.columns)}, not {[id_col, 'fold']}"
    elif stored[id_col].duplicated().any():
        damaged = f"{id_col} values repeat"
    elif not stored["fold"].isin(range(n_splits)).all() or stored["fold"].nunique() != n_splits:
        damaged = f"its fold ids are not 0..{n_splits - 1}"
    if damaged:
        raise DataError(f"folds file {path} is damaged ({damaged}); delete it to make new folds (runs made on the "
                        "old folds are then no longer comparable with new ones)")
    by_id = pd.Series(stored["fold"].to_numpy(dtype=np.int64), index=stored[id_col].to_numpy())
    current = pd.Index(ids)
    gone = by_id.index.difference(current)
    new = current.difference(by_id.index)
    if len(gone) or len(new):
        raise DataError(f"the train data changed since {path} was made: the folds cover {len(by_id)} rows, train "
                        f"now has {len(current)} ({len(gone)} ids gone, {len(new)} new). If the new train file is "
                        f"right, move {path} away to make new folds; otherwise restore the original train file")
    return by_id.reindex(ids).to_numpy(dtype=np.int64)
