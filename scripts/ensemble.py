#!/usr/bin/env python
"""Blend the runs you already have into an ensemble run, with honest nested CV: the weights that score fold k are
chosen on the other folds' out-of-fold rows only. The result is an ordinary run (CV, submission, a record naming
its members and weights) that submit.py and the report treat like any other.

    python scripts/ensemble.py house-prices                         # every run on the persisted folds, hill climb
    python scripts/ensemble.py titanic --runs RUN_ID RUN_ID ...     # these runs only (ids or unique prefixes)
    python scripts/ensemble.py disaster-tweets --method nnls        # non-negative least-squares weights
    python scripts/ensemble.py house-prices --max-members 4         # at most 4 distinct runs in the blend

Methods: hill (greedy forward selection with replacement, Caruana et al., then shrunk towards its first pick as far
as a further leave-one-fold-out says), nnls (non-negative weights), rank (rank average: only for metrics that score
order, such as ROC AUC). Ensembles are not blended again.
"""


import _checkout  # noqa: F401  (the code beside this script, wherever the .venv was made)

import competitions
from common import blending, ensemble_runs, paths
from common.cli import Parser, parse_args, positive_arg, run_main
from common.runs import load_runs, standing


def main() -> int:
    parser = Parser(__doc__)
    parser.add_argument("competition", help=f"one of: {', '.join(competitions.names())}")
    parser.add_argument("--runs", nargs="+", metavar="RUN_ID", help="run ids to blend (default: every run of the "
                        "competition on the most used folds)")
    parser.add_argument("--method", default="hill", choices=blending.METHODS,
                        help="hill: greedy forward selection with replacement in the metric's direction (default); "
                        "nnls: non-negative least-squares weights; rank: rank average (ranking metrics only)")
    parser.add_argument("--max-members", type=positive_arg, help="most distinct runs in the blend")
    parser.add_argument("--data-dir", help="local mirror of the competition files (as for train.py)")
    args = parse_args(parser, competitions.names())
    comp = competitions.get(args.competition)
    record, skipped, best = ensemble_runs.build(comp, args.runs, args.method, args.max_members, args.data_dir)
    for run_id, reason in skipped:
        print(f"skipped {run_id}: {reason}")
    cv, metric = record.cv, comp.metric.name
    print(f"{comp.name} ensemble ({args.method}) of {len(record.ensemble['members'])} runs: CV {metric} "
          f"{record.cv_text()} over {len(cv['fold_scores'])} folds (nested: each fold's weights "
          f"chosen on the others); best single run {best['cv_mean']:.5f} ({best['run_id']})")
    if args.method == "hill":
        print(f"  hill blend kept against its first pick (chosen one level further in; 0 = that run alone): "
              f"{ensemble_runs.describe_shrink(record.ensemble, len(cv['fold_scores']))}")
    members = {m["run_id"]: m for m in record.ensemble["members"]}
    for run_id, weight in sorted(record.ensemble["weights"].items(), key=lambda kv: -kv[1]):
        member = members[run_id]
        flag = ", params tuned on these folds" if member["tuned"] else ""
        print(f"  {weight:6.3f}  {member['recipe']:<14} {run_id}  (CV {member['cv_mean']:.5f}{flag})")
    if any(members[run_id]["tuned"] for run_id, weight in record.ensemble["weights"].items() if weight > 0):
        print("note: members whose params were tuned on these folds bring their optimism into the blend's CV: the "
              "weights are chosen honestly, their params were not (compare.py --tuned scores such params on "
              "other folds)")
    print(f"submission: {paths.shown(paths.submission_file(comp.name))}  (run {record.run_id})")
    if (place := standing(record, load_runs(comp.name), comp.metric)) is not None:
        print(place)
    if comp.metric.is_better(best["cv_mean"], cv["mean"]):
        print(f"note: the blend's nested CV is below the best single run's, whose CV is a max over the runs taken "
              f"on every fold; to send that run: python scripts/submit.py {comp.name} --run {best['run_id']}")
    return 0


if __name__ == "__main__":
    run_main(main)
