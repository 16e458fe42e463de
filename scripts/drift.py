#!/usr/bin/env python
"""How different is test from train? Adversarial validation: a classifier told to separate train rows from test
rows on the competition's features, cross-validated. ROC AUC 0.5 = no drift; the top features say what differs.
Text competitions add TF-IDF terms; Web Traffic compares the last window of each page with its earlier windows.
The result goes to reports/drift/<competition>.json and into the report (python scripts/leaderboard.py).

    python scripts/drift.py titanic
    python scripts/drift.py disaster-tweets
"""


import _checkout  # noqa: F401  (the code beside this script, wherever the .venv was made)

import competitions
from common import drift
from common.cli import Parser, parse_args, run_main, seed_arg


def main() -> int:
    parser = Parser(__doc__)
    parser.add_argument("competition", help=f"one of: {', '.join(competitions.names())}")
    parser.add_argument("--data-dir", help="local mirror of the competition files (as for train.py)")
    parser.add_argument("--seed", type=seed_arg, default=0, help="seed of the folds and the classifier")
    args = parse_args(parser)
    comp = competitions.get(args.competition)
    result, path = drift.check(comp, args.data_dir, args.seed)
    print(f"{comp.name}: adversarial ROC AUC {result.auc:.3f} ± {result.auc_std:.3f} ({result.what})")
    print(f"  {result.verdict}")
    for name, share in result.top[:10]:
        print(f"  {share:6.1%}  {name}")
    for note in result.left_out:
        print(f"  left out: {note}")
    print(f"saved: {path}")
    return 0


if __name__ == "__main__":
    run_main(main)
