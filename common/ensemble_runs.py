"""Ensembles of finished runs: read the members' out-of-fold and test predictions from their run folders, blend
them with honest nested CV (common.blending) and write the result as an ordinary run (CV, submission, a record
naming its members and weights) that submit.py and the report treat like any other.

Only runs on the same persisted folds can be blended: their out-of-fold predictions are then keyed alike and each
fold's rows were predicted by models that never saw them. Runs that cannot take part are listed with the reason.
"""

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from common import blending, runner, submission
from common.competition import Competition
from common.cv import CVResult
from common.errors import DataError, UsageError
from common.runs import RunRecord, RunWriter, common_folds, find_run, load_runs, most_used

log = logging.getLogger(__name__)
RECIPE = "ensemble"


@dataclass
class Member:
    record: RunRecord
    oof: np.ndarray  # keyed like the truth
    test: np.ndarray


@dataclass
class Selection:
    records: list[RunRecord]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (run id, reason)


def select(comp: Competition, run_ids: list[str] | None = None) -> Selection:
    """The runs to blend: the ones named (else every run of the competition), less ensembles and runs on other
    folds or other data files than the most common ones."""
    runs = load_runs(comp.name)
    if not runs:
        raise UsageError(f"no runs of {comp.name} yet: train some first (python scripts/train.py {comp.name} "
                         f"--recipe ...)")
    if run_ids:
        named = [find_run(runs, i, comp.name) for i in run_ids]
        runs = list({r.run_id: r for r in named}.values())
    chosen, skipped = [], []
    for r in runs:
        if r.ensemble:
            skipped.append((r.run_id, "an ensemble itself (its weights already saw every fold's labels)"))
        else:
            chosen.append(r)
    if chosen:
        folds = common_folds(chosen)
        for r in [r for r in chosen if r.folds.get("hash") != folds]:
            skipped.append((r.run_id, f"on other folds ({_describe_folds(r)}) than the runs on folds {folds}"))
        chosen = [r for r in chosen if r.folds.get("hash") == folds]
        data = most_used(chosen, _sha)
        for r in [r for r in chosen if _sha(r) != data]:
            skipped.append((r.run_id, "trained on other data files (their sha256 differ)"))
        chosen = [r for r in chosen if _sha(r) == data]
    return Selection(chosen, skipped)


def _sha(record: RunRecord) -> tuple:
    return tuple(sorted(record.data.get("sha256", {}).items()))


def _describe_folds(record: RunRecord) -> str:
    f = record.folds
    return f"{f.get('kind', '?')}, k={f.get('n_splits', '?')}, seed {f.get('seed', '?')}, hash {f.get('hash')}"


class Unreadable(Exception):
    """A member's prediction files are missing or not what a run writes: it is skipped with a warning."""


def _values(frame: pd.DataFrame, prefix: str) -> np.ndarray:
    """``prefix`` alone (one value per row) or ``prefix_0..k`` (class probabilities); members' columns of a stack
    (``prefix_<member>``) are not the run's own prediction."""
    if prefix in frame.columns:
        return frame[prefix].to_numpy(dtype=float)
    classes = sorted((c for c in frame.columns if c.startswith(f"{prefix}_") and c[len(prefix) + 1:].isdigit()),
                     key=lambda c: int(c[len(prefix) + 1:]))
    if not classes:
        raise Unreadable(f"it has no {prefix!r} column")
    return frame[classes].to_numpy(dtype=float)


def _by_id(frame: pd.DataFrame, id_col: str, ids: np.ndarray, what: str) -> pd.DataFrame:
    if id_col not in frame.columns:
        raise Unreadable(f"its {what} has no {id_col!r} column")
    if len(frame) != len(ids) or frame[id_col].duplicated().any() or not frame[id_col].isin(ids).all():
        raise Unreadable(f"its {what} rows are not the competition's {len(ids)} {id_col} values")
    return frame.set_index(id_col).loc[ids].reset_index()


def _by_day(frame: pd.DataFrame, id_col: str, ids: np.ndarray, dates: pd.DatetimeIndex, what: str,
            require_all: bool, columns: np.ndarray | None = None) -> np.ndarray:
    """Series x days: the days a frame holds, put in place among ``dates`` (NaN elsewhere), or among the day
    ``columns`` of them alone; in the file's own float type (float32 as runs write them: values as they are, at
    half the memory)."""
    frame = _by_id(frame, id_col, ids, what)
    position = {d.date().isoformat(): i for i, d in enumerate(dates)}
    days = [c for c in frame.columns if c != id_col]
    unknown = [d for d in days if d not in position]
    if unknown or (require_all and len(days) != len(dates)):
        raise Unreadable(f"its {what} days do not match the competition's ({unknown[:3] or 'some are missing'})")
    place = {d: position[d] for d in days}
    if columns is not None:
        kept = {int(day): j for j, day in enumerate(columns)}
        place = {d: kept[i] for d, i in place.items() if i in kept}
    values = frame[list(place)].to_numpy()
    out = np.full((len(ids), len(dates) if columns is None else len(columns)), np.nan,
                  dtype=np.result_type(values.dtype, np.float32))
    out[:, list(place.values())] = values
    return out


def read_member(record: RunRecord, prep: runner.Prepared, columns: np.ndarray | None = None) -> Member:
    """A run's predictions keyed like the truth (series x days: only the day ``columns`` given); Unreadable when its
    files are missing or damaged."""
    data = prep.data
    try:
        oof = pd.read_parquet(record.folder / "oof.parquet")
        test = pd.read_parquet(record.folder / "test_pred.parquet")
    except Exception as exc:  # noqa: BLE001 - any way a file can be missing or damaged
        raise Unreadable(f"its prediction files cannot be read ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
    if prep.folds.fold is None:  # series x days
        return Member(record,
                      _by_day(oof, data.id_col, np.asarray(prep.X.series), prep.X.dates, "out-of-fold file", False,
                              columns),
                      _by_day(test, data.id_col, np.asarray(prep.X_test.history.series), prep.X_test.dates,
                              "test file", True))
    oof_values = _values(_by_id(oof, data.id_col, data.train[data.id_col].to_numpy(), "out-of-fold file"), "oof")
    test_values = _values(_by_id(test, data.id_col, data.test[data.id_col].to_numpy(), "test file"), "pred")
    return Member(record, oof_values, test_values)


def coverage(part, y: np.ndarray) -> np.ndarray:
    """Where a fold's validation part sits in a container keyed like ``y``: a row mask, or for a backtest window
    the mask of its cells."""
    placed = part.place(None, y, np.ones(np.shape(part.truth(y)), dtype=float))
    return ~np.isnan(placed)


@dataclass
class Layout:
    """Where the blend works: every row, or for series x days only the days some fold validates - nothing else of
    the container holds an out-of-fold value (at full size Web Traffic's is 145 063 pages x 803 days, its five
    backtest windows 310 of those days: 0.93 GB a member in float64 against 0.18 GB in the runs' float32)."""

    y: np.ndarray  # the truth, in those columns
    folds: list[np.ndarray]  # every fold's cells (or rows), in those columns
    columns: np.ndarray | None  # the day columns kept; None: rows, all kept

    def expand(self, oof: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """A prediction over the kept columns back in the whole container (NaN elsewhere)."""
        if self.columns is None:
            return oof
        out = np.full(shape, np.nan, dtype=oof.dtype)
        out[:, self.columns] = oof
        return out


def layout(prep: runner.Prepared, y: np.ndarray) -> Layout:
    """The columns of ``y`` some fold validates (of every fold, scored or not: no run predicts other days)."""
    folds = [coverage(f.valid, y) for f in prep.folds.folds]
    if prep.folds.fold is not None:
        return Layout(y, folds, None)
    columns = np.flatnonzero(np.logical_or.reduce(folds).any(axis=0))
    return Layout(y[:, columns], [f[:, columns] for f in folds], columns)


def build(comp: Competition, run_ids: list[str] | None = None, method: str = "hill",
          max_members: int | None = None, data_dir=None) -> tuple[RunRecord, list[tuple[str, str]], dict[str, Any]]:
    """Blend the runs, write the ensemble run and publish its submission; returns (record, skipped runs, the best
    member on the same folds)."""
    started = time.perf_counter()
    if method not in blending.METHODS:
        raise UsageError(f"unknown method {method!r}; choose one of: {', '.join(blending.METHODS)}")
    if method == "rank" and not comp.metric.ranking:
        raise UsageError(f"--method rank averages ranks, which only suits metrics that score order (roc_auc); "
                         f"{comp.name} is scored by {comp.metric.name}: use hill or nnls")
    selection = select(comp, run_ids)
    for run_id, reason in selection.skipped:
        log.warning("skipping run %s: %s", run_id, reason)
    _enough(comp, selection.records)
    n_splits = selection.records[0].folds.get("n_splits", 5)
    prep = runner.prepare(comp, n_splits, data_dir, used_by=selection.records[0].data)
    if tuple(sorted(prep.files.sha256.items())) != _sha(selection.records[0]):
        raise DataError(f"the {comp.name} files in {prep.files.folder} are not the ones these runs were trained on "
                        "(their sha256 differ): point --data-dir at those files, or train the runs again")
    if prep.folds.hash != selection.records[0].folds.get("hash"):
        raise DataError(f"the persisted folds of {comp.name} (hash {prep.folds.hash}) are not the ones these runs "
                        f"used ({selection.records[0].folds.get('hash')}): the data or folds changed since; "
                        "train the runs again")
    full_y = np.asarray(prep.data.y)
    cells = layout(prep, full_y)
    members, skipped = load_members(selection, prep, cells.columns)
    _enough(comp, [m.record for m in members])
    y = cells.y
    masks = shared_folds(members, prep, cells)
    log.info("blending %d runs of %s (%s) on %d folds", len(members), comp.name, method, len(masks))
    blend = blending.nested(method, [m.oof for m in members], [m.test for m in members], y, masks, comp.score,
                            comp.metric, max_members, counts=comp.counts)
    if blend.chosen_on is not None:
        log.info("the weights were chosen on a fixed sample of %d of the %d %s (folds of more than %s cells); every "
                 "cell is scored", blend.chosen_on, len(y), "series" if cells.columns is not None else "rows",
                 f"{blending.CHOOSE_CELLS:,}")
    if blend.left_out:
        space = blending.space_for(comp.metric)
        log.info("the hill chose without %d row(s) that no run explains (further than %s from the runs' median, %s "
                 "scale); every row is scored", blend.left_out, space.far, space.name)
    member_results = {m.record.run_id: CVResult(m.oof, m.test, scores)
                      for m, scores in zip(members, blend.member_fold_scores, strict=True)}
    best_id = comp.metric.rank(list(member_results), lambda i: member_results[i].mean)[0]
    result = CVResult(cells.expand(blend.oof, full_y.shape), blend.test_pred, blend.fold_scores,
                      [(time.perf_counter() - started) / len(masks)] * len(masks), members=member_results)
    ids = [m.record.run_id for m in members]

    def weights(values: np.ndarray) -> dict[str, float]:
        return {i: round(float(v), 6) for i, v in zip(ids, values, strict=True) if v > 0}

    ensemble: dict[str, Any] = {
        "method": method,
        "space": blending.space_for(comp.metric).name if method != "rank" else "rank",
        "members": [{"run_id": m.record.run_id, "recipe": m.record.recipe, "cv_mean": member_results[i].mean,
                     "weight": float(w), "tuned": m.record.tuned}
                    for m, i, w in zip(members, ids, blend.weights, strict=True)],
        "weights": weights(blend.weights),
        "fold_weights": [weights(w) for w in blend.fold_weights],
        "folds_used": len(masks),
        "rounded": blend.rounded,
        "fold_rounded": blend.fold_rounded,
        "shrink": blend.shrink,  # share of the hill blend kept against its lead (the rest: the lead alone)
        "fold_shrink": blend.fold_shrink,
        "left_out_of_choice": blend.left_out,  # rows no member explains: not used to choose, scored all the same
        # the series (rows) of the fixed sample the weights were chosen on (None: all of them); every cell is scored
        "chosen_on_sample": blend.chosen_on,
        "best_member": {"run_id": best_id, "cv_mean": member_results[best_id].mean},
        "skipped": [{"run_id": i, "reason": r} for i, r in skipped],
    }
    params = {"method": method, "max_members": max_members, "runs": ids}
    with RunWriter(comp.name, RECIPE, params) as run:
        record = runner.finish_run(run, prep, RECIPE, result, params=params, params_source={"kind": "ensemble"},
                                   seed=0, started=started, ensemble=ensemble)
    submission.publish(record.folder / "submission.csv", comp.name)
    return record, skipped, ensemble["best_member"]


def load_members(selection: Selection, prep: runner.Prepared,
                 columns: np.ndarray | None = None) -> tuple[list[Member], list[tuple[str, str]]]:
    """The selected runs' predictions; runs whose files are missing or damaged are skipped with a warning."""
    members, skipped = [], list(selection.skipped)
    for record in selection.records:
        try:
            members.append(read_member(record, prep, columns))
        except Unreadable as exc:
            log.warning("skipping run %s: %s", record.run_id, exc)
            skipped.append((record.run_id, str(exc)))
    return members, skipped


def shared_folds(members: list[Member], prep: runner.Prepared, cells: Layout) -> list[np.ndarray]:
    """The masks of the folds every member scored (at least two: each fold's weights come from the others); a
    member with NaN where it should have predictions is refused, naming it."""
    scored = min(m.record.folds_scored for m in members)
    if scored < 2:
        few = ", ".join(m.record.run_id for m in members if m.record.folds_scored < 2)
        raise UsageError(f"an honest blend needs at least two folds every member scored (each fold's weights are "
                         f"chosen on the others); {few} scored one: train it again with --folds-scored all, or "
                         "leave it out with --runs")
    masks = [cells.folds[k] for k in prep.folds.scored(scored)]
    every = np.logical_or.reduce(masks)
    for m in members:
        bad_oof = bool(np.isnan(m.oof[every]).any())
        if bad_oof or np.isnan(m.test).any():
            where = "out-of-fold" if bad_oof else "test"
            raise DataError(f"run {m.record.run_id} has NaN among its {where} predictions; an ensemble cannot use "
                            f"it: leave it out with --runs, or move its folder away")
    return masks


def _enough(comp: Competition, records: list[RunRecord]) -> None:
    if len(records) < 2:
        have = f"only {records[0].run_id}" if records else "none"
        raise UsageError(f"an ensemble needs at least two runs of {comp.name} on the same folds ({have} can take "
                         f"part): train more recipes or seeds with python scripts/train.py {comp.name} --recipe ...")


def describe_shrink(ensemble: dict, folds: int) -> str:
    """The shares kept, or why none was chosen: each fold's weights come from the other folds, and a share needs
    ``blending.SHRINK_MIN_FOLDS`` of those."""
    test = (f"{ensemble['shrink']:g} for the test weights" if folds >= blending.SHRINK_MIN_FOLDS
            else f"not chosen: {folds} folds are too few")
    if folds - 1 < blending.SHRINK_MIN_FOLDS:
        return f"{test}; per fold not chosen, since each fold's weights come from only {folds - 1} other fold(s)"
    return f"{test}, {', '.join(f'{v:g}' for v in ensemble['fold_shrink'])} per fold"
