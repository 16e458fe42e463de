"""Where the forecaster errs, as pictures for the report: backtest SMAPE per forecast day and per project, and a
few pages' recent history with the backtest forecast and the test forecast."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from common import plotting
from common.metrics import smape_score
from competitions.web_traffic.files import PAGE_PATTERN


@dataclass(frozen=True)
class History:
    """What the pictures need of the files: every page's visits on every train day (the key and the sample are not
    read: at full size they are 8.7 million rows each)."""

    pages: pd.Series
    dates: pd.DatetimeIndex
    visits: np.ndarray  # pages x dates


def cells(run: Any, history: History) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """(oof frame, truth and forecast pages x validated days) of a run, aligned on the run's days."""
    oof = pd.read_parquet(run.path / "oof.parquet")
    days = pd.DatetimeIndex(pd.to_datetime(oof.columns[1:]))
    position = history.dates.get_indexer(days)
    rows = pd.Index(history.pages).get_indexer(oof["Page"])
    return oof, history.visits[rows][:, position], oof.iloc[:, 1:].to_numpy(np.float32)


def per_step(run: Any, oof: pd.DataFrame, truth: np.ndarray, forecast: np.ndarray) -> pd.Series:
    """SMAPE of each forecast day (1 = the first day after the gap), pooled over the backtest windows."""
    days = pd.DatetimeIndex(pd.to_datetime(oof.columns[1:]))
    step = np.zeros(len(days), dtype=int)
    for w in run.folds["windows"]:
        inside = (days >= pd.Timestamp(w["first_day"])) & (days <= pd.Timestamp(w["last_day"]))
        step[inside] = (days[inside] - pd.Timestamp(w["first_day"])).days + 1
    return pd.Series({s: smape_score(truth[:, step == s].ravel(), forecast[:, step == s].ravel())
                      for s in sorted(set(step) - {0})})


def per_project(oof: pd.DataFrame, truth: np.ndarray, forecast: np.ndarray) -> pd.Series:
    project = oof["Page"].str.extract(PAGE_PATTERN)["project"].fillna("unknown").to_numpy()
    return pd.Series({p: smape_score(truth[project == p].ravel(), forecast[project == p].ravel())
                      for p in sorted(set(project))}).sort_values()


def example_pages(level: np.ndarray, names: pd.Series, pages: int) -> np.ndarray:
    """Rows of ``pages`` pages spread over the traffic levels (from the lower quartile to the busiest), each from
    another project and access where the panel has them: a panel can be mostly one wiki's (the replica's pages are
    78 % es.wikipedia spider ones), and four pictures of one wiki show less than four wikis do. In order of level."""
    order = np.argsort(level, kind="stable")
    parts = names.str.extract(PAGE_PATTERN).fillna("")
    kind = pd.factorize(parts["project"] + " " + parts["access"])[0][order]  # by rank of level
    ranks = np.arange(len(order))
    taken = np.zeros(len(order), dtype=bool)
    for target in np.linspace(len(order) // 4, len(order) - 1, min(pages, len(order))).astype(int):
        distance = np.abs(ranks - target).astype(float)
        distance[taken] = np.inf
        fresh = np.where(np.isin(kind, kind[taken]), np.inf, distance)  # the nearest rank of a kind not shown yet,
        taken[np.argmin(fresh) if np.isfinite(fresh).any() else np.argmin(distance)] = True  # else the nearest
    return order[taken]


def figures(run: Any, load_history: Callable[[], History], pages: int = 4) -> list[tuple[str, Any]]:
    plt = plotting.pyplot()

    history = load_history()
    oof, truth, forecast = cells(run, history)
    steps = per_step(run, oof, truth, forecast)
    projects = per_project(oof, truth, forecast)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6), gridspec_kw={"width_ratios": [3, 2]})
    left.plot(steps.index, steps.to_numpy(), marker=".", lw=1)
    left.set_xlabel("forecast day")
    left.set_ylabel("SMAPE %")
    left.set_title(f"backtest SMAPE per forecast day ({len(run.folds['windows'])} windows)")
    right.barh(projects.index, projects.to_numpy(), color="tab:blue")
    right.set_xlabel("SMAPE %")
    right.set_title("per project")
    fig.tight_layout()
    out = [("Backtest SMAPE per forecast day and per project", fig)]

    test = pd.read_parquet(run.path / "test_pred.parquet")
    # pandas' median skips NaN without numpy's all-NaN warning (pages with no visits recorded in the windows)
    level = pd.DataFrame(truth).median(axis=1).fillna(0).to_numpy() if truth.size else None
    if level is not None and len(level):
        chosen = example_pages(level, oof["Page"], pages)
        dates = history.dates
        fig, axes = plt.subplots(pages, 1, figsize=(11, 2.1 * pages), sharex=True)
        oof_days = pd.DatetimeIndex(pd.to_datetime(oof.columns[1:]))
        test_days = pd.DatetimeIndex(pd.to_datetime(test.columns[1:]))
        for ax, i in zip(np.atleast_1d(axes), chosen, strict=False):
            page = oof["Page"].iloc[i]
            row = int(pd.Index(history.pages).get_loc(page))
            shown = dates >= oof_days[0] - pd.Timedelta(days=60)
            ax.plot(dates[shown], history.visits[row, shown], color="grey", lw=0.8, label="visits")
            ax.plot(oof_days, forecast[i], color="tab:blue", lw=1.2, label="backtest forecast")
            ax.plot(test_days, test.iloc[int(np.flatnonzero(test["Page"].to_numpy() == page)[0]), 1:].to_numpy(
                np.float32), color="tab:red", lw=1.2, label="test forecast")
            ax.set_title(plotting.drawable(page), fontsize=8)
            ax.set_yscale("symlog")
        np.atleast_1d(axes)[0].legend(fontsize=7, loc="upper left")
        fig.tight_layout()
        out.append(("A few pages: history, backtest forecast and test forecast", fig))
    return out
