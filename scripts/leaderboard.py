#!/usr/bin/env python
"""Rank every run by CV beside its Kaggle score: reports/leaderboard.md, a self-contained
reports/leaderboard.html with plots (both always of every competition with runs), and a compact table here.

    python scripts/leaderboard.py                    # every competition with runs
    python scripts/leaderboard.py titanic --sync     # first read your titanic submissions' scores from Kaggle;
                                                     # the table here shows titanic alone
    python scripts/leaderboard.py --storage postgresql://user@host/optuna   # studies tuned on a shared database
"""

import argparse

import competitions
from common import kaggle_runs, report
from common.cli import parse_args, run_main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    if args.sync:
        for name in report.present(names):
            updated = kaggle_runs.sync(competitions.get(name))
            print(f"{name}: scores synced for {updated} run(s)")
    # the files always hold every competition (a sync of one must not leave the others out of the report); the
    # names choose what is synced and what the terminal shows
    figures = {n: competitions.get(n).figures for n in report.present() if n in competitions.names()}
    md, page, sections = report.write(storage=args.storage,
                                      figures={n: f for n, f in figures.items() if f is not None})
    shown = [s for s in sections if names is None or s.name in names]
    print(report.terminal(shown) if shown or names is None else
          f"no runs of {', '.join(names)} yet: train one with python scripts/train.py {names[0]}")
    print(f"report: {md} and {page}")
    return 0


if __name__ == "__main__":
    run_main(main)
