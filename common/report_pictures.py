"""The report's pictures, as embedded PNGs: each run's fold scores, CV against the leaderboard, feature importance,
drift, each study's Optuna history, and a competition's own pictures of its best run (kept in a cache while
nothing they are drawn from changed)."""

import base64
import hashlib
import inspect
import io
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import plotting
from common.io import write_json_atomic
from common.provenance import code_sha256
from common.report_sections import Section, counted, reason
from common.runs import RunRecord

log = logging.getLogger(__name__)
TOP_RUNS_PLOTTED = 20
# reports/.pictures/<competition>.json: a competition's own pictures of its best run, drawn again only when that run,
# its files or the code that draws them change (Web Traffic's read the 145 063-page train file: 11 s at full size)
PICTURES_CACHE = ".pictures"


def png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


Figures = Callable[[RunRecord], list[tuple[str, Any]]]


def competition_figures(section: Section, figures: Figures | None,
                         cache: Path | None = None) -> list[tuple[str, str]]:
    """A competition's own pictures of its best run (e.g. what a digit model gets wrong), as embedded PNGs; with
    ``cache`` (a folder), kept there and taken from there while nothing they are drawn from has changed."""
    if figures is None or not section.runs:
        return []
    best = section.runs[0]
    key = _pictures_key(best, figures) if cache is not None else None
    saved = (cache / f"{section.name}.json", key) if cache is not None and key is not None else None
    if saved is not None and (pictures := _saved_pictures(*saved)) is not None:
        return pictures
    try:
        pictures = [(f"{title} ({best.run_id})", png(fig)) for title, fig in figures(best)]
    except Exception as exc:  # noqa: BLE001 - a competition's pictures must not stop the report
        log.warning("skipping the %s pictures of run %s: %s", section.name, best.run_id, reason(exc))
        return []
    if saved is not None:
        try:
            write_json_atomic(saved[0], {"key": saved[1], "run_id": best.run_id, "pictures": pictures})
        except OSError as exc:  # only a cache: the report is written all the same
            log.warning("cannot keep the %s pictures in %s (%s)", section.name, saved[0], exc.strerror or exc)
    return pictures


def _pictures_key(run: RunRecord, figures: Figures) -> str | None:
    """What a run's pictures are drawn from: the run's files (all but run.json, whose Kaggle scores a sync fills
    in), the data files it recorded, and the code - the drawing competition's package and ``common``. None when
    the run's folder cannot be listed (the pictures then say what is wrong)."""
    from importlib import metadata

    if run.path is None:
        return None
    try:
        files = sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in run.path.iterdir()
                       if f.is_file() and f.name != "run.json")
        code = code_sha256(("common", str(Path(inspect.getfile(figures)).resolve().parent)))
        key = [run.run_id, files, run.data.get("sha256"), metadata.version("matplotlib"), code]
    except (OSError, TypeError, metadata.PackageNotFoundError):
        return None
    return hashlib.sha256(json.dumps(key, default=str).encode()).hexdigest()


def _saved_pictures(path: Path, key: str) -> list[tuple[str, str]] | None:
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        if saved["key"] == key:
            return [(str(title), str(uri)) for title, uri in saved["pictures"]]
    except (OSError, ValueError, KeyError, TypeError):  # none yet, or damaged: drawn again
        pass
    return None


def plots(section: Section) -> list[tuple[str, str]]:
    plt = plotting.pyplot()
    from matplotlib.ticker import MaxNLocator

    plots = []
    runs = section.runs[:TOP_RUNS_PLOTTED]
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(runs) + 1.5))
    labels = [f"{r.recipe} {r.run_id[:15]}" for r in runs]
    ax.boxplot([r.cv["fold_scores"] for r in runs], orientation="horizontal", tick_labels=labels)
    for i, r in enumerate(runs, 1):
        ax.scatter(r.cv["fold_scores"], [i] * len(r.cv["fold_scores"]), s=12, alpha=0.6)
    ax.invert_yaxis()
    ax.set_xlabel(f"fold {section.metric.name}")
    ax.set_title(f"{section.name}: fold scores per run (best CV on top)")
    plots.append(("Fold-score spread per run", png(fig)))

    scored = [r for r in section.runs if r.leaderboard() is not None]
    if scored:
        fig, ax = plt.subplots(figsize=(5.5, 5))
        cv = [r.cv["mean"] for r in scored]
        lb = [r.leaderboard() for r in scored]
        ax.scatter(cv, lb)
        low, high = min(cv + lb), max(cv + lb)
        ax.plot([low, high], [low, high], linestyle="--", color="grey", label="LB = CV")
        gap = sum(b - a for a, b in zip(cv, lb, strict=True)) / len(cv)
        ax.set_xlabel(f"CV {section.metric.name}")
        ax.set_ylabel(f"public LB {section.metric.name}")
        ax.set_title(f"{section.name}: CV vs leaderboard (mean LB-CV gap {gap:+.4f})")
        ax.legend()
        plots.append(("CV vs leaderboard", png(fig)))

    plots += _importance_plot(section, plt) + _drift_plot(section, plt)

    for study, trials in section.studies.items():
        if not trials:
            continue
        fig, ax = plt.subplots(figsize=(7, 3.5))
        numbers, values, own = zip(*trials, strict=True)
        best, running = [], None
        for v in values:
            running = v if running is None or section.metric.is_better(v, running) else running
            best.append(running)
        ax.scatter(numbers, values, s=8, alpha=0.5, label="trial")
        ax.plot(numbers, best, color="red", label="best so far")
        if any(own):  # what tuning is measured against: the recipe untuned (its newest defaults), on the same folds
            newest = max(i for i, flag in enumerate(own) if flag)
            ax.axhline(values[newest], color="grey", linestyle=":", label="the recipe's own params")
        ax.set_xlabel("trial")
        ax.set_xlim(min(numbers) - 0.5, max(numbers) + 0.5)  # whole trial numbers, even for a one-trial study
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.set_ylabel(f"CV {section.metric.name}")
        ax.set_title(f"Optuna history: {study}")
        ax.legend()
        plots.append((f"Optuna optimisation history ({study})", png(fig)))
    return plots


TOP_FEATURES_PLOTTED = 20


def _bars(plt, names: list[str], values: list[float], xlabel: str, title: str):
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(names) + 1.2))
    ax.barh(range(len(names)), values, color="#4c72b0")
    ax.set_yticks(range(len(names)), labels=[plotting.drawable(n) for n in names])
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    return fig


def _importance_plot(section: Section, plt) -> list[tuple[str, str]]:
    run = section.explained
    if run is None:
        return []
    imp = run.importance
    items = list(imp["features"].items())[:TOP_FEATURES_PLOTTED]
    label = "total split gain" if imp["kind"] == "gain" else f"{section.metric.name} lost when shuffled"
    fig = _bars(plt, [n for n, _ in items], [v for _, v in items], label,
                f"{section.name}: {run.recipe} {run.run_id[:15]} ({imp['kind']}, "
                f"{'' if imp['folds'] == 1 else 'mean of '}{counted(imp['folds'], 'fold')})")
    return [(f"Feature importance of the best run that has it ({run.run_id})", png(fig))]


def _drift_plot(section: Section, plt) -> list[tuple[str, str]]:
    d = section.drift
    if not d or not d.get("top"):
        return []
    fig = _bars(plt, [n for n, _ in d["top"]], [v for _, v in d["top"]], "share of the classifier's gain",
                f"{section.name}: what separates train from test (AUC {d['auc']:.3f})")
    return [("Drifting features (adversarial validation)", png(fig))]
