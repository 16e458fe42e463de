"""The CV leaderboard report: every run ranked by CV (in its metric's own direction) beside its Kaggle score.

Writes ``reports/leaderboard.md`` and a self-contained ``reports/leaderboard.html`` (plots embedded as PNG data
URIs, no network resources) and returns a compact table for the terminal. Per competition: fold-score spread per
run, CV against leaderboard score with the CV-LB gap, the Optuna optimisation history of each study, the ensemble
runs with their members, the train/test drift check (scripts/drift.py) and what the best run relied on.
"""

import base64
import hashlib
import html
import inspect
import io
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import drift, paths, plotting
from common.io import write_json_atomic, write_text_atomic
from common.metrics import Metric, by_name
from common.provenance import code_sha256
from common.runs import OWN_PARAMS, RunRecord, best_run, best_unsent, load_runs, trials_text

log = logging.getLogger(__name__)
TOP_RUNS_PLOTTED = 20
# reports/.pictures/<competition>.json: a competition's own pictures of its best run, drawn again only when that run,
# its files or the code that draws them change (Web Traffic's read the 145 063-page train file: 11 s at full size)
PICTURES_CACHE = ".pictures"


@dataclass
class Section:
    name: str
    metric: Metric
    runs: list[RunRecord]  # sorted best first
    # study name -> (trial number, value, whether it is the recipe's own params) of its complete trials
    studies: dict[str, list[tuple[int, float, bool]]]
    drift: dict[str, Any] | None = None  # the saved adversarial validation (common.drift), if any
    best: RunRecord | None = None  # the best by CV as submit.py picks it (runs.best_run)
    unsent: RunRecord | None = None  # the best by CV whose file Kaggle does not have

    @property
    def ensembles(self) -> list[RunRecord]:
        return [r for r in self.runs if r.ensemble]

    @property
    def explained(self) -> RunRecord | None:
        """The best run whose record says what its model relied on."""
        return next((r for r in self.runs if r.importance.get("features")), None)


def _params_source(run: RunRecord) -> str:
    src = run.params_source or {"kind": "recipe"}
    if src.get("kind") == "study":
        return f"study {trials_text(src)}" + (" (own params)" if src.get(OWN_PARAMS) else "")
    if src.get("kind") == "stack":
        return f"stack: {trials_text(src)}"
    return src.get("kind", "recipe")


def present(competitions: list[str] | None = None, runs: list[RunRecord] | None = None) -> list[str]:
    """The competitions that have runs (of the ones asked for, when given): cheap, reads only run records."""
    names = sorted({r.competition for r in (load_runs() if runs is None else runs)})
    return [n for n in competitions if n in names] if competitions else names


def collect(competitions: list[str] | None = None, storage: str | None = None) -> list[Section]:
    """Runs grouped by competition (only those present, or the ones asked for), best CV first."""
    runs = load_runs()
    sections = []
    for name in present(competitions, runs):
        mine = [r for r in runs if r.competition == name]
        if not mine:
            continue
        metric = by_name(mine[0].metric["name"], mine[0].metric.get("direction"))
        sections.append(Section(name, metric, metric.rank(mine, lambda r: r.cv["mean"]),
                                _studies(name, storage), drift.load(name), best_run(mine, metric, quiet=True),
                                best_unsent(mine, metric, quiet=True)))
    return sections


def _studies(name: str, storage: str | None) -> dict[str, list[tuple[int, float, bool]]]:
    """Finished trials of this competition's studies, from ``storage`` (a journal file or any database URL, as for
    tune.py) or, by default, the competition's own journal."""
    from common import storages

    url = storage or storages.default_storage(name)
    local = storages.storage_file(url)
    if local is not None and not local.is_file():  # never created by reading it
        return {}
    try:
        return storages.histories(url, prefix=f"{name}:")
    except Exception as exc:  # noqa: BLE001 - an unreadable storage must not stop the report
        log.warning("skipping the Optuna history of %s from %s: %s", name, storages.display_url(url), _reason(exc))
        return {}


def _fmt(value: float | None, digits: int = 5) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _rows(section: Section) -> list[list[str]]:
    rows = []
    for rank, r in enumerate(section.runs, 1):
        public, private = r.leaderboard(), r.leaderboard("private_score")
        gap = None if public is None else public - r.cv["mean"]
        rows.append([str(rank), r.run_id, r.recipe, r.cv_text(),
                     str(len(r.cv.get("fold_scores", []))), _params_source(r),
                     f"{r.seconds.get('total', 0):.1f}", r.started[:16].replace("T", " "),
                     _lb_text(r, public), _fmt(private), _fmt(gap, 4), _code(r)])
    return rows


def _lb_text(run: RunRecord, public: float | None) -> str:
    """The public score, or why there is none yet for a run sent to Kaggle: a submit with --no-wait (or one whose
    wait ran out) is scored by the next sync, and a rejected file says so."""
    if public is not None:
        return _fmt(public)
    return {"PENDING": "pending (--sync)", "ERROR": "rejected"}.get(run.kaggle_status() or "", "")


def _code(run: RunRecord) -> str:
    """The commit a run's code came from, short; ``+`` when it had uncommitted changes, followed by the start of
    their code.patch's sha256 (the same changes, the same code; a record from before code.patch has ``+`` alone);
    without git, ``#`` and the start of the code's own sha256."""
    commit = run.environment.get("git_commit") or ""
    if not commit:  # a checkout without git: the code's own sha256
        return f"#{run.environment['code_sha256'][:6]}" if run.environment.get("code_sha256") else ""
    patch = run.environment.get("code_patch") or ""
    return commit[:7] + ("+" + patch[:4] if commit.endswith("-dirty") else "")


HEADER = ["#", "run", "recipe", "CV", "folds", "params", "seconds", "date", "public LB", "private LB", "LB-CV",
          "code"]


def markdown(sections: list[Section]) -> str:
    if not sections:
        return "# CV leaderboard\n\nNo runs yet: train one with `python scripts/train.py titanic`.\n"
    out = ["# CV leaderboard", ""]
    for s in sections:
        out += [f"## {s.name} — {s.metric.name} ({s.metric.direction_in_words})", "", "| " + " | ".join(HEADER) + " |",
                "|" + "---|" * len(HEADER)]
        out += ["| " + " | ".join(row) + " |" for row in _rows(s)]
        out.append("")
        if (line := _next_line(s)) is not None:
            out += [line, ""]
        out += _markdown_extras(s)
    return "\n".join(out)


def _ensemble_rows(section: Section) -> list[list[str]]:
    rows = []
    for r in section.ensembles:
        e = r.ensemble
        members = ", ".join(f"{m['run_id']} × {m['weight']:.2f}"
                            for m in sorted(e.get("members", []), key=lambda m: -m.get("weight", 0))
                            if m.get("weight", 0) > 0)
        best = e.get("best_member", {})
        rows.append([r.run_id, e.get("method", "?"), r.cv_text(),
                     _fmt(best.get("cv_mean")), members])
    return rows


ENSEMBLE_HEADER = ["run", "method", "CV (nested)", "best member", "members × weight"]


def _next_submit(section: Section) -> tuple[str, str] | None:
    """The command that sends the run ``submit.py`` would pick, and why that run. The table ranks every run by its
    plain CV mean, while the pick compares only runs on the same folds and counts a partly scored run's folds'
    difficulty, and skips files Kaggle has: rank 1 may not be it."""
    best, unsent = section.best, section.unsent
    if best is None:
        return None
    if unsent is None:
        return "", "none, every run's file is on Kaggle already"
    what = f"{unsent.recipe} run {unsent.run_id}, CV {unsent.cv_text()}"
    if unsent is best:
        return f"python scripts/submit.py {section.name}", f"{what}: the best by CV"
    return (f"python scripts/submit.py {section.name} --run {unsent.run_id}",
            f"{what}: the best by CV whose file Kaggle does not have (the best, {best.run_id}, is on Kaggle)")


def _next_line(section: Section) -> str | None:
    """The next submission, as a markdown line."""
    found = _next_submit(section)
    if found is None:
        return None
    command, why = found
    return f"Next to submit: `{command}` - {why}." if command else f"Next to submit: {why}."


def _drift_lines(section: Section) -> list[str]:
    d = section.drift
    if not d:
        return [f"Not checked yet: `python scripts/drift.py {section.name}`."]
    top = ", ".join(f"{name} ({share:.0%})" for name, share in d.get("top", [])[:8])
    return [f"Adversarial ROC AUC **{d['auc']:.3f} ± {d['auc_std']:.3f}** ({d['what']}; {d.get('created', '')[:10]}):"
            f" {d['verdict']}.", f"Top drifting features: {top or 'none'}."]


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}" if n == 1 else f"{n} {thing}s"


def _importance_lines(section: Section) -> list[str]:
    run = section.explained
    if run is None:
        return ["No run of this competition records feature importance."]
    imp = run.importance
    top = ", ".join(f"{name} ({value:.3g})" for name, value in list(imp["features"].items())[:10])
    folds = _count(imp["folds"], "fold")
    return [f"Best run with importance: {run.recipe} {run.run_id} ({imp['kind']}, {folds}): {top}."]


def _markdown_extras(section: Section) -> list[str]:
    out = ["### Ensembles", ""]
    rows = _ensemble_rows(section)
    if rows:
        out += ["| " + " | ".join(ENSEMBLE_HEADER) + " |", "|" + "---|" * len(ENSEMBLE_HEADER)]
        out += ["| " + " | ".join(row) + " |" for row in rows]
    else:
        out.append(f"None yet: `python scripts/ensemble.py {section.name}`.")
    out += ["", "### Train/test drift", "", *_drift_lines(section), "", "### What the best run relied on", "",
            *_importance_lines(section), ""]
    return out


def terminal(sections: list[Section], limit: int = 10) -> str:
    if not sections:
        return "no runs yet: train one with python scripts/train.py titanic"
    lines = []
    for s in sections:
        lines.append(f"{s.name} ({s.metric.name}, {s.metric.direction_in_words})")
        shown, rest = _top_and_scored(s, limit)
        for run, row in shown:
            lb = f"  LB {row[8]}" if row[8] else ""
            tuned = "  (tuned on its folds: optimistic)" if run.tuned else ""
            lines.append(f"  {row[0]:>3} {row[3]:>20}  {row[2]:<12} {row[1]}{lb}{tuned}")
        if rest:
            lines.append(f"  ... {_count(len(rest), 'more run')} with a lower CV, in the report")
        if (found := _next_submit(s)) is not None:
            command, why = found
            lines.append(f"  next: {command}  # {why}" if command else f"  next to submit: {why}")
    return "\n".join(lines)


Ranked = list[tuple[RunRecord, list[str]]]  # runs with their table rows, best CV first


def _top_and_scored(section: Section, limit: int) -> tuple[Ranked, Ranked]:
    """(run, row) of the best ``limit`` runs by CV and of every run sent to Kaggle (CV beside LB is the point of the
    table, and a run just submitted or synced should show), then of the others."""
    shown: Ranked = []
    rest: Ranked = []
    for rank, pair in enumerate(zip(section.runs, _rows(section), strict=True), 1):
        (shown if rank <= limit or pair[0].kaggle_submissions else rest).append(pair)
    return shown, rest


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


Figures = Callable[[RunRecord], list[tuple[str, Any]]]


def _competition_figures(section: Section, figures: Figures | None,
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
        pictures = [(f"{title} ({best.run_id})", _png(fig)) for title, fig in figures(best)]
    except Exception as exc:  # noqa: BLE001 - a competition's pictures must not stop the report
        log.warning("skipping the %s pictures of run %s: %s", section.name, best.run_id, _reason(exc))
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


def _reason(exc: Exception) -> str:
    """Why a part of the report was skipped, in one line (a missing file's own text is often just its path)."""
    if isinstance(exc, FileNotFoundError):
        return f"{exc.filename or exc} is missing"
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _plots(section: Section) -> list[tuple[str, str]]:
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
    plots.append(("Fold-score spread per run", _png(fig)))

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
        plots.append(("CV vs leaderboard", _png(fig)))

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
        plots.append((f"Optuna optimisation history ({study})", _png(fig)))
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
                f"{'' if imp['folds'] == 1 else 'mean of '}{_count(imp['folds'], 'fold')})")
    return [(f"Feature importance of the best run that has it ({run.run_id})", _png(fig))]


def _drift_plot(section: Section, plt) -> list[tuple[str, str]]:
    d = section.drift
    if not d or not d.get("top"):
        return []
    fig = _bars(plt, [n for n, _ in d["top"]], [v for _, v in d["top"]], "share of the classifier's gain",
                f"{section.name}: what separates train from test (AUC {d['auc']:.3f})")
    return [("Drifting features (adversarial validation)", _png(fig))]


def _html_table(header: list[str], rows: list[list[str]], css: str) -> str:
    return (f"<table class='{css}'><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
            + "</table>")


SHOWN_RUNS = 25  # the HTML table's rows before the rest fold away (the markdown keeps every row)


def _html_runs(section: Section) -> list[str]:
    """The best ``SHOWN_RUNS`` runs by CV and every run with a leaderboard score, the rest folded under them: a few
    hundred runs would push the ensembles, drift and pictures far down the page."""
    shown, rest = _top_and_scored(section, SHOWN_RUNS)
    out = [_html_table(HEADER, [row for _, row in shown], "runs")]
    if rest:
        out.append(f"<details><summary>{_count(len(rest), 'more run')} (lower CV, not sent to Kaggle)</summary>"
                   f"{_html_table(HEADER, [row for _, row in rest], 'runs')}</details>")
    return out


def _html_extras(section: Section) -> list[str]:
    out = ["<h3>Ensembles</h3>"]
    rows = _ensemble_rows(section)
    out.append(_html_table(ENSEMBLE_HEADER, rows, "ensembles") if rows else
               f"<p>None yet: <code>python scripts/ensemble.py {html.escape(section.name)}</code>.</p>")
    out.append("<h3>Train/test drift</h3>")
    out += [f"<p class='drift'>{_inline(line)}</p>" for line in _drift_lines(section)]
    out.append("<h3>What the best run relied on</h3>")
    out += [f"<p class='importance'>{_inline(line)}</p>" for line in _importance_lines(section)]
    return out


def _inline(markdown_line: str) -> str:
    """The few markdown marks the report's lines use (**bold**, `code`), as HTML."""
    import re

    text = html.escape(markdown_line)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def html_page(sections: list[Section], figures: dict[str, Figures] | None = None,
              pictures_cache: Path | None = None) -> str:
    style = ("body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:right}"
             "th{background:#f0f0f0}td:nth-child(2),td:nth-child(3){text-align:left}img{max-width:100%}"
             "table.ensembles td{text-align:left}")
    body = ["<h1>CV leaderboard</h1>"]
    if len(sections) > 1:  # the competitions one after another make a long page: say what is on it
        body.append("<p class='contents'>" + " · ".join(
            f"<a href='#{html.escape(s.name)}'>{html.escape(s.name)}</a> ({_count(len(s.runs), 'run')})"
            for s in sections) + "</p>")
    if not sections:
        body.append("<p>No runs yet: train one with <code>python scripts/train.py titanic</code>.</p>")
    for s in sections:
        name = html.escape(s.name)
        body.append(f"<h2 id='{name}'>{name} — {html.escape(s.metric.name)} ({s.metric.direction_in_words})</h2>")
        body += _html_runs(s)
        if (line := _next_line(s)) is not None:
            body.append(f"<p class='next'>{_inline(line)}</p>")
        body += _html_extras(s)
        for title, uri in _plots(s) + _competition_figures(s, (figures or {}).get(s.name), pictures_cache):
            body.append(f"<h3>{html.escape(title)}</h3><img alt='{html.escape(title)}' src='{uri}'>")
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>CV leaderboard</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>")


def write(competitions: list[str] | None = None, storage: str | None = None,
          figures: dict[str, Figures] | None = None) -> tuple[Path, Path, list[Section]]:
    """``figures``: per competition, its own pictures of a run (the Competition spec's ``figures``)."""
    sections = collect(competitions, storage)
    folder = paths.home() / "reports"
    md = write_text_atomic(folder / "leaderboard.md", markdown(sections))
    page = write_text_atomic(folder / "leaderboard.html", html_page(sections, figures, folder / PICTURES_CACHE))
    return md, page, sections
