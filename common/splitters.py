"""Splitters: how train is cut into folds, made once per competition, persisted, and reused by every run and trial.

One protocol for the CV engine: ``split(data, k, name) -> Folds``, a persisted, hashed sequence of ``Fold(train,
valid)``, whose parts know how to take their slice of the model input (``take``) and of the truth (``truth``), and
where their predictions go in the out-of-fold container (``place``). Two families:

- ``RowFolds`` wraps any scikit-learn splitter (KFold, StratifiedKFold, GroupKFold, StratifiedGroupKFold, or a
  user's own) and persists the fold id of every train row;
- ``Backtest`` cuts time: each window trains on every day before its cut-off and validates on the next ``horizon``
  days (after an optional ``gap``), windows placed back from the end of train; its windows are persisted.

Comparing two runs is only fair on the same folds, so the file name carries everything that defines the assignment
(``folds/<competition>/<kind>-k<k>-seed<s>[-by-<grouping>].csv``) and its hash goes into every run record.
"""

import hashlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from common import paths
from common.competition import Data
from common.errors import DataError, UsageError
from common.io import write_csv_atomic

log = logging.getLogger(__name__)

# Fold kind -> scikit-learn splitter, imported when folds are made: commands that only read runs (submit, report,
# prune, download) start a second sooner without scikit-learn (and scipy.stats, which it imports).
SKLEARN_KINDS: dict[str, str] = {"kfold": "KFold", "stratified": "StratifiedKFold", "group": "GroupKFold",
                                  "stratified-group": "StratifiedGroupKFold"}
STRATIFIED = ("stratified", "stratified-group")


# -- parts: what one side of a fold is --------------------------------------------------------------------------
@dataclass(frozen=True)
class Rows:
    """A set of train rows (positions)."""

    index: np.ndarray

    def take(self, X):
        return X.iloc[self.index] if isinstance(X, pd.DataFrame | pd.Series) else X[self.index]

    def truth(self, y):
        return np.asarray(y)[self.index]

    def place(self, oof: np.ndarray | None, y, pred: np.ndarray) -> np.ndarray:
        if oof is None:
            oof = np.full((len(y), *pred.shape[1:]), np.nan, dtype=float)
        oof[self.index] = pred
        return oof


@dataclass(frozen=True)
class Window:
    """Days ``[start, stop)`` of every series, forecast from the history before ``history_end``. Both sides of a
    backtest fold are windows: the training side (``fit``) is the history, told which days it will have to forecast
    (their dates, never their values: a forecaster needs the horizon and the gap to build its training targets)."""

    history_end: int  # the model sees days [0, history_end)
    start: int  # first forecast day (history_end + gap)
    stop: int
    fit: bool = False

    def take(self, X) -> "ForecastTask":
        return ForecastTask(X.until(self.history_end), X.dates[self.start:self.stop])

    def truth(self, y):
        y = np.asarray(y)
        return y[:, : self.history_end] if self.fit else y[:, self.start:self.stop]

    def place(self, oof: np.ndarray | None, y, pred: np.ndarray) -> np.ndarray:
        if oof is None:
            oof = np.full(np.shape(y), np.nan, dtype=np.float32)
        oof[:, self.start:self.stop] = pred
        return oof


def refit_input(X, X_test):
    """What a model refitted on all of train sees: every train row, or for forecasting the whole history with the
    days to forecast (the test task itself)."""
    return X_test if isinstance(X_test, ForecastTask) else X


@dataclass(frozen=True)
class Panel:
    """Many series over the same days (a competition's ``X`` for forecasting): values series x days, float32."""

    series: np.ndarray  # one id per row
    dates: pd.DatetimeIndex
    values: np.ndarray
    static: pd.DataFrame | None = None  # per-series features (project, access, agent...), one row per series

    def until(self, end: int) -> "Panel":
        return replace(self, dates=self.dates[:end], values=self.values[:, :end])

    def __len__(self) -> int:
        return len(self.series)


@dataclass(frozen=True)
class ForecastTask:
    """What a forecaster predicts from: the history, and the days to forecast (possibly after a gap)."""

    history: Panel
    dates: pd.DatetimeIndex

    @property
    def gap(self) -> int:
        return int((self.dates[0] - self.history.dates[-1]).days) - 1

    def __len__(self) -> int:
        return len(self.history)


@dataclass(frozen=True)
class Fold:
    train: Any  # Rows | Window
    valid: Any


@dataclass(frozen=True)
class Folds:
    """A persisted split: its folds, where it lives, its hash, and what defines it (for the run record)."""

    folds: tuple[Fold, ...]
    path: Path | None
    hash: str
    spec: dict[str, Any] = field(default_factory=dict)
    fold: np.ndarray | None = None  # row splitters: the fold id of every train row

    @property
    def n_splits(self) -> int:
        return len(self.folds)

    def __iter__(self) -> Iterator[Fold]:
        return iter(self.folds)

    def __len__(self) -> int:
        return len(self.folds)

    def scored(self, n: int | None) -> list[int]:
        """The folds a run that scores ``n`` of them scores (None: all): the first ``n`` row folds, or the newest ``n``
        backtest windows - the ones with the most history, whose models train most like the final fit."""
        k = len(self.folds) if n is None else min(n, len(self.folds))
        return list(range(k)) if self.fold is not None else list(range(len(self.folds) - k, len(self.folds)))

    def test_train_ratio(self) -> float:
        """How big a fold's validation side is against its training side, on average: rows, or for backtest windows
        days forecast against days of history (the correlation term of the corrected standard error in common.cv)."""
        def size(part) -> int:
            if isinstance(part, Rows):
                return len(part.index)
            return part.history_end if part.fit else part.stop - part.start

        return float(np.mean([size(f.valid) for f in self.folds]) / np.mean([size(f.train) for f in self.folds]))

    def pairs(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(train rows, validation rows) of each fold, as scikit-learn splitters give them (row splitters)."""
        return [(f.train.index, f.valid.index) for f in self.folds]


def folds_hash(fold: np.ndarray) -> str:
    return hashlib.sha256(np.asarray(fold, dtype=np.int64).tobytes()).hexdigest()[:16]


def row_folds(fold: np.ndarray, path: Path | None = None, spec: dict | None = None) -> Folds:
    """Folds from a fold id per row (fold k validates the rows with id k)."""
    fold = np.asarray(fold, dtype=np.int64)
    parts = tuple(Fold(Rows(np.flatnonzero(fold != k)), Rows(np.flatnonzero(fold == k)))
                  for k in range(int(fold.max()) + 1))
    return Folds(parts, path, folds_hash(fold), spec or {}, fold)


class Splitter(Protocol):
    """What the CV engine and the runner talk to."""

    def split(self, data: Data, n_splits: int, name: str) -> Folds: ...

    def check_persisted(self, data: Data, n_splits: int, name: str) -> None: ...

    def resplit(self, data: Data, n_splits: int, seed: int) -> Folds: ...


# -- row splitters ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RowFolds:
    """K folds over train rows with any scikit-learn splitter.

    ``kind`` names one of KFold / StratifiedKFold / GroupKFold / StratifiedGroupKFold ("kfold", "stratified",
    "group", "stratified-group"), or is a factory ``(n_splits, seed) -> splitter`` for a user's own (then ``label``
    names it in the file name, and ``stratify`` says whether it takes the target). ``groups(data)`` returns a group
    label per row (e.g. duplicate tweets) so related rows never straddle folds; ``grouping`` names it. The seed is
    the competition's, not the run's: every run shares one assignment.
    """

    kind: str | Callable[[int, int], Any] = "stratified"
    groups: Callable[[Data], np.ndarray] | None = None
    seed: int = 42
    grouping: str | None = None
    label: str | None = None
    stratify: bool | None = None

    @property
    def name(self) -> str:
        if isinstance(self.kind, str):
            return self.kind
        return self.label or str(getattr(self.kind, "__name__", "custom"))

    def _splitter(self, n_splits: int):
        if not isinstance(self.kind, str):
            return self.kind(n_splits, self.seed)
        if self.kind not in SKLEARN_KINDS:
            raise UsageError(f"unknown fold kind {self.kind!r}; choose one of: {', '.join(SKLEARN_KINDS)}")
        import sklearn.model_selection

        splitter: Callable[..., Any] = getattr(sklearn.model_selection, SKLEARN_KINDS[self.kind])
        return splitter(n_splits, shuffle=True, random_state=self.seed)

    def path(self, n_splits: int, name: str) -> Path:
        by = f"-by-{self.grouping}" if self.groups is not None else ""
        return paths.folds_dir(name) / f"{self.name}-k{n_splits}-seed{self.seed}{by}.csv"

    def spec(self, n_splits: int) -> dict[str, Any]:
        return {"kind": self.name, "n_splits": n_splits, "seed": self.seed, "grouping": self.grouping}

    def check_n_splits(self, data: Data, n_splits: int, groups: np.ndarray | None) -> None:
        """Refuse a fold count this data cannot honour, naming the range that works (a usage error, not a data
        one: the data is fine, the option is not)."""
        n = len(data.train)
        limits = {"rows": n}
        if self.name in STRATIFIED or self.stratify:
            limits["rows of the smallest class"] = int(pd.Series(data.y).value_counts().min())
        if groups is not None:
            limits["groups"] = int(pd.Series(groups).nunique())
        what, most = min(limits.items(), key=lambda kv: kv[1])
        if not 2 <= n_splits <= most:
            raise UsageError(f"cannot make {n_splits} {self.name} folds of {n} train rows: there are only {most} "
                             f"{what}; choose --folds between 2 and {min(most, 20)}")

    def assign(self, data: Data, n_splits: int) -> np.ndarray:
        """A fresh fold id per train row (not persisted)."""
        n = len(data.train)
        groups = self.groups(data) if self.groups is not None else None
        if groups is None and self.kind in ("group", "stratified-group"):
            raise UsageError(f"fold kind {self.kind!r} keeps groups of rows together, and this competition's "
                             f"splitter defines no groups; choose kfold or stratified")
        self.check_n_splits(data, n_splits, groups)
        fold = np.full(n, -1, dtype=np.int64)
        for k, (_, valid) in enumerate(self._splitter(n_splits).split(np.zeros(n), data.y, groups)):
            fold[valid] = k
        if (fold < 0).any():
            raise UsageError(f"splitter {self.name} left {int((fold < 0).sum())} rows in no validation fold")
        return fold

    def check_persisted(self, data: Data, n_splits: int, name: str) -> None:
        """Refuse data that no longer fits the persisted folds (without creating any)."""
        path = self._existing(n_splits, name)
        if path is not None:
            _stored_folds(path, data.id_col, data.train[data.id_col].to_numpy(), n_splits)

    def _existing(self, n_splits: int, name: str) -> Path | None:
        """The persisted file; folds made before file names carried seed and grouping are still used (and copied
        to the new name), since they were made by the same splitter with the competition's seed."""
        path = self.path(n_splits, name)
        if path.is_file():
            return path
        legacy = paths.folds_dir(name) / f"{self.name}-k{n_splits}.csv"
        if legacy.is_file() and self.seed == RowFolds.seed:
            write_csv_atomic(path, pd.read_csv(legacy))
            log.info("folds %s now live in %s", legacy, path)
            return path
        return None

    def split(self, data: Data, n_splits: int, name: str) -> Folds:
        """Load the persisted assignment for this competition and k, or create and persist it.

        The stored assignment is matched to train rows by id, so the same rows in another order keep their folds.
        """
        path = self._existing(n_splits, name)
        ids = data.train[data.id_col].to_numpy()
        if path is not None:
            fold = _stored_folds(path, data.id_col, ids, n_splits)
            log.info("reusing folds %s", path)
        else:
            path = self.path(n_splits, name)
            fold = self.assign(data, n_splits)
            write_csv_atomic(path, pd.DataFrame({data.id_col: ids, "fold": fold}))
            log.info("created folds %s", path)
        return row_folds(fold, path, self.spec(n_splits))

    def resplit(self, data: Data, n_splits: int, seed: int) -> Folds:
        """The same splitter with another seed, not persisted (repeated CV in scripts/compare.py)."""
        other = replace(self, seed=seed)
        return row_folds(other.assign(data, n_splits), None, other.spec(n_splits))

    def with_kind(self, kind: str) -> "RowFolds":
        return replace(self, kind=kind, groups=self.groups if "group" in kind else None,
                       grouping=self.grouping if "group" in kind else None)


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


# -- backtests ---------------------------------------------------------------------------------------------------
def _days(value: int | Callable[[Data], int], data: Data) -> int:
    return int(value(data) if callable(value) else value)


@dataclass(frozen=True)
class Backtest:
    """Backtest windows for forecasting: window i trains on every day before its cut-off and validates on the
    ``horizon`` days after a ``gap``; the newest window ends at the last train day, the others step back by
    ``step`` days (default: the horizon, so windows do not overlap). ``horizon`` and ``gap`` may be functions of
    the data (a competition reads them off its key file). ``dates(data)`` gives the days of ``data``'s panel.

    ``seed`` only matters for repeated CV: another seed moves every window back by a week per seed step.
    """

    horizon: int | Callable[[Data], int]
    dates: Callable[[Data], pd.DatetimeIndex]
    gap: int | Callable[[Data], int] = 0
    step: int | None = None
    min_history: int = 28
    seed: int = 42
    min_splits: int = 1  # a competition may insist on several windows (one window is one draw of the weather)

    def windows(self, data: Data, n_splits: int, shift: int = 0) -> list[tuple[pd.Timestamp, pd.Timestamp,
                                                                              pd.Timestamp]]:
        """(last history day, first validated day, last validated day) of each window, oldest first."""
        dates = self.dates(data)
        horizon, gap = _days(self.horizon, data), _days(self.gap, data)
        step = self.step or horizon
        if n_splits < self.min_splits:
            raise UsageError(f"a backtest of this competition needs at least {self.min_splits} windows; choose "
                             f"--folds {self.min_splits} or more")
        if n_splits < 1 or horizon < 1 or gap < 0:
            raise UsageError(f"a backtest needs at least 1 window and horizon >= 1, gap >= 0 (got {n_splits}, "
                             f"{horizon}, {gap})")
        out = []
        for i in range(n_splits):
            stop = len(dates) - shift - (n_splits - 1 - i) * step
            start = stop - horizon
            history_end = start - gap
            if history_end < self.min_history:
                most = max(0, (len(dates) - shift - horizon - gap - self.min_history) // step + 1)
                low = max(2, self.min_splits)  # --folds starts at 2
                choice = f"choose --folds between {low} and {most}" if most >= low else f"it holds {most} at most"
                raise UsageError(f"cannot place {n_splits} backtest windows of {horizon} days (gap {gap}) in "
                                 f"{len(dates)} days with {self.min_history} days of history each; {choice}")
            out.append((dates[history_end - 1], dates[start], dates[stop - 1]))
        return out

    def path(self, n_splits: int, name: str, data: Data) -> Path:
        horizon, gap = _days(self.horizon, data), _days(self.gap, data)
        return paths.folds_dir(name) / f"backtest-k{n_splits}-h{horizon}-gap{gap}-step{self.step or horizon}.csv"

    def _folds(self, data: Data, windows, path: Path | None, n_splits: int) -> Folds:
        dates = self.dates(data)
        position = {d: i for i, d in enumerate(dates)}
        parts = []
        for last_history, first, last in windows:
            missing = [str(d.date()) for d in (last_history, first, last) if d not in position]
            if missing:
                raise DataError(f"the train days changed since {path} was made: {', '.join(missing)} no longer "
                                f"in train; if the new train file is right, move {path} away to make new windows")
            history_end = position[last_history] + 1
            valid = Window(history_end, position[first], position[last] + 1)
            parts.append(Fold(replace(valid, fit=True), valid))
        table = _windows_frame(windows)
        digest = hashlib.sha256(table.to_csv(index=False).encode()).hexdigest()[:16]
        spec = {"kind": "backtest", "n_splits": n_splits, "horizon": _days(self.horizon, data),
                "gap": _days(self.gap, data), "windows": table.astype(str).to_dict("records")}
        return Folds(tuple(parts), path, digest, spec)

    def check_persisted(self, data: Data, n_splits: int, name: str) -> None:
        path = self.path(n_splits, name, data)
        if path.is_file():
            self._folds(data, _read_windows(path), path, n_splits)

    def split(self, data: Data, n_splits: int, name: str) -> Folds:
        path = self.path(n_splits, name, data)
        if path.is_file():
            windows = _read_windows(path)
            fresh = self.windows(data, n_splits)
            if [w[2] for w in windows][-1] != fresh[-1][2]:
                log.warning("train now ends on %s but the persisted windows %s end on %s; delete the file to "
                            "backtest up to the new last day", fresh[-1][2].date(), path, windows[-1][2].date())
            log.info("reusing backtest windows %s", path)
        else:
            windows = self.windows(data, n_splits)
            write_csv_atomic(path, _windows_frame(windows))
            log.info("created backtest windows %s", path)
        return self._folds(data, windows, path, n_splits)

    def resplit(self, data: Data, n_splits: int, seed: int) -> Folds:
        return self._folds(data, self.windows(data, n_splits, shift=7 * abs(seed - self.seed)), None, n_splits)


def _windows_frame(windows: Sequence[tuple]) -> pd.DataFrame:
    return pd.DataFrame({"window": range(len(windows)),
                         "last_history_day": [w[0].date().isoformat() for w in windows],
                         "first_day": [w[1].date().isoformat() for w in windows],
                         "last_day": [w[2].date().isoformat() for w in windows]})


def _read_windows(path: Path) -> list[tuple[pd.Timestamp, pd.Timestamp, pd.Timestamp]]:
    try:
        table = pd.read_csv(path)
        return [(pd.Timestamp(a), pd.Timestamp(b), pd.Timestamp(c)) for a, b, c in
                zip(table["last_history_day"], table["first_day"], table["last_day"], strict=True)]
    except (ValueError, KeyError) as exc:
        raise DataError(f"backtest windows file {path} is damaged ({exc}); delete it to make new windows") from exc
