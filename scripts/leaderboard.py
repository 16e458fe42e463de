#!/usr/bin/env python
"""Rank every run by CV beside its Kaggle score: reports/leaderboard.md, a self-contained
reports/leaderboard.html with plots (both always of every competition with runs), and a compact table here.

    python scripts/leaderboard.py                    # every competition with runs
    python scripts/leaderboard.py titanic --sync     # first read your titanic submissions' scores from Kaggle;
                                                     # the table here shows titanic alone
    python scripts/leaderboard.py --storage postgresql://user@host/optuna   # studies tuned on a shared database
"""


import _checkout  # noqa: F401  (the code beside this script, wherever the .venv was made)

import competitions
from common import kaggle_runs, report
from common.cli import Parser, parse_args, run_main
from common.errors import KaggleApiError
from common.runs import load_runs


def main() -> int:
    parser = Parser(__doc__)
    parser.add_argument("competitions", nargs="*", help=f"what --sync reads and the table here shows (the report "
                        f"files always hold every competition); any of: {', '.join(competitions.names())}")
    parser.add_argument("--sync", action="store_true", help="fill in scores of your submissions from Kaggle")
    parser.add_argument("--storage", help="tuning storage to plot studies from (a journal file or a database URL, "
                        "as for tune.py; default: each competition's own journal)")
    args = parse_args(parser)
    names = args.competitions or None
    for name in names or []:
        competitions.get(name)  # unknown names fail here, in one line
    if args.storage:
        from common import storages  # lazy: Optuna only when a storage is named

        storages.require_storage(args.storage, "--storage takes the journal file or database tune.py wrote "
                               "(by default runs/<competition>/optuna.journal)")
    failed = sync(names) if args.sync else None
    # the files always hold every competition (a sync of one must not leave the others out of the report); the
    # names choose what is synced and what the terminal shows
    figures = {n: competitions.get(n).figures for n in report.present() if n in competitions.names()}
    md, page, sections = report.write(storage=args.storage,
                                      figures={n: f for n, f in figures.items() if f is not None})
    shown = [s for s in sections if names is None or s.name in names]
    print(report.terminal(shown) if shown or names is None else
          f"no runs of {', '.join(names)} yet: train one with python scripts/train.py {names[0]}")
    print(f"report: {md} and {page}")
    if failed is not None:
        raise failed  # after the report: it holds what was synced before
    return 0


def sync(names: list[str] | None) -> KaggleApiError | None:
    """Sync the named competitions, or every one whose runs recorded a submission: one trained from a local copy
    and never entered on Kaggle would only fail (its rules not accepted). The first failure stops the sync."""
    asked = report.present(names)
    if names is None:
        recorded = {r.competition for r in load_runs() if r.kaggle_submissions}
        if skipped := [n for n in asked if n not in recorded]:
            print(f"not synced (no submission recorded; name one to sync it anyway): {', '.join(skipped)}")
        asked = [n for n in asked if n in recorded]
    try:
        for name in asked:
            updated, news = kaggle_runs.sync(competitions.get(name))
            print(f"{name}: scores synced for {updated} run(s)", *(f"  newly scored: {line}" for line in news),
                  sep="\n")
    except KaggleApiError as exc:
        return exc
    return None


if __name__ == "__main__":
    run_main(main)
