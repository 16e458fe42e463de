"""The CV leaderboard report: every run ranked by CV (in its metric's own direction) beside its Kaggle score.

Writes ``reports/leaderboard.md`` and a self-contained ``reports/leaderboard.html`` (plots embedded as PNG data
URIs, no network resources) and returns a compact table for the terminal. Per competition: the runs' table, the
next run to send, the ensemble runs with their members, the train/test drift check (scripts/drift.py), what the
best run relied on, and the pictures (``report_pictures.py``); ``report_sections.py`` gathers what each shows.
"""

import html
from pathlib import Path

from common import paths
from common.io import write_text_atomic
from common.report_pictures import PICTURES_CACHE, Figures, competition_figures, plots
from common.report_sections import Section, collect, counted, present
from common.runs import OWN_PARAMS, RunRecord, trials_text

__all__ = ["Section", "collect", "html_page", "markdown", "present", "terminal", "write"]


def _params_source(run: RunRecord) -> str:
    src = run.params_source or {"kind": "recipe"}
    if src.get("kind") == "study":
        return f"study {trials_text(src)}" + (" (own params)" if src.get(OWN_PARAMS) else "")
    if src.get("kind") == "stack":
        return f"stack: {trials_text(src)}"
    return src.get("kind", "recipe")


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


def _importance_lines(section: Section) -> list[str]:
    run = section.explained
    if run is None:
        return ["No run of this competition records feature importance."]
    imp = run.importance
    top = ", ".join(f"{name} ({value:.3g})" for name, value in list(imp["features"].items())[:10])
    folds = counted(imp["folds"], "fold")
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
            lines.append(f"  ... {counted(len(rest), 'more run')} with a lower CV, in the report")
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
        out.append(f"<details><summary>{counted(len(rest), 'more run')} (lower CV, not sent to Kaggle)</summary>"
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
            f"<a href='#{html.escape(s.name)}'>{html.escape(s.name)}</a> ({counted(len(s.runs), 'run')})"
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
        for title, uri in plots(s) + competition_figures(s, (figures or {}).get(s.name), pictures_cache):
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
