#!/usr/bin/env python
"""Tune a recipe's search space with Optuna on the competition's persisted folds.

    python scripts/tune.py titanic --recipe lgbm --trials 200 --timeout 900
    python scripts/tune.py titanic --recipe lgbm --trials 200 --workers 2
    python scripts/tune.py titanic --recipe lgbm --trials 400 --storage postgresql://user@host/db   # many machines
    python scripts/tune.py house-prices --recipe default --trials 100 --timeout 1800   # a stack: each tunable member
    python scripts/tune.py house-prices --recipe ridge,lasso --trials 50                # several, one after another

--trials is each study's total of finished (complete + pruned) trials: the same command again resumes a study that
was stopped or killed. --timeout is one deadline for the command: several recipes share it by what a trial of each
takes, so that each gets about as many trials. A new study's first trial is the recipe's own params, so its best is
never worse on these folds than the recipe untuned, and the summary says what tuning gained. Then:
python scripts/train.py titanic --recipe lgbm --params best
"""

import argparse

import _checkout  # noqa: F401  (the code beside this script, wherever the .venv was made)
import optuna
from optuna.trial import TrialState

import competitions
from common import storages, tuning, tuning_turns
from common.cli import Parser, folds_arg, names_arg, parse_args, positive_arg, run_main, seconds_arg, seed_arg
from common.competition import Competition


def main() -> int:
    parser = Parser(__doc__)
    parser.add_argument("competition", help=f"one of: {', '.join(competitions.names())}")
    parser.add_argument("--recipe", required=True, type=names_arg, action="extend",
                        help="a recipe with a search space; a stack (house-prices default) tunes each of its members "
                        "that has one; several (ridge,lasso or the option again), or 'all' (every recipe that has "
                        "one), are tuned one after another")
    parser.add_argument("--trials", type=positive_arg, help="stop when each study has this many finished trials")
    parser.add_argument("--timeout", type=seconds_arg(1), help="stop starting new trials after this many seconds "
                        "(the whole command: several recipes share it by what their trials take, so that each gets "
                        "about as many trials)")
    parser.add_argument("--workers", type=positive_arg, default=1,
                        help="local worker processes on the study (default 1)")
    parser.add_argument("--storage", help="SQLAlchemy URL or journal file (default runs/<competition>/optuna.journal)")
    parser.add_argument("--seed", type=seed_arg, default=0, help="model seed; sampler seeds derive from it")
    parser.add_argument("--folds", type=folds_arg, help="CV folds, the same persisted folds as train.py (default: "
                        "the competition's own)")
    parser.add_argument("--data-dir", help="local mirror of the competition files (as for train.py)")
    args = parse_args(parser)
    comp = competitions.get(args.competition)
    args.folds = args.folds or comp.default_folds
    if "all" in args.recipe and len(args.recipe) > 1:
        parser.error("--recipe all tunes every recipe that has a search space: give it alone, or name the recipes")
    names, fixed = tuning.recipes_to_tune(comp, args.recipe)
    tuning.require_an_end(args.trials, args.timeout)
    if fixed:
        print(f"{', '.join(fixed)}: no search space; the stack runs {'them' if len(fixed) > 1 else 'it'} with "
              "its own params")
    studies = tuning_turns.tune_in_turn(comp, names, n_trials=args.trials, timeout=args.timeout,
                                        storage_url=args.storage, workers=args.workers, seed=args.seed,
                                        n_folds=args.folds, data_dir=args.data_dir)
    lines = []
    for name, study in studies.items():
        lines += (summary(comp, name, study, args) if study is not None
                  else [f"{comp.name}:{name}: not tuned, --timeout ran out before its turn"])
    if len(names) > 1:
        print(f"{comp.name}: what the {len(names)} studies found")
    print("\n".join(lines))
    stacks = [n for n in dict.fromkeys(args.recipe) if n != "all" and comp.recipe(n).members]
    for stack in stacks:
        print(f"train the stack with its members' best trials: python scripts/train.py {comp.name} --recipe {stack} "
              f"--params best{options(comp, args, storage=True)}")
    return 0


def options(comp: Competition, args: argparse.Namespace, storage: bool = False) -> str:
    """The options a train.py command needs to score what this command tuned."""
    return ((f" --storage {storages.display_url(args.storage)}" if storage and args.storage else "")
            + (f" --seed {args.seed}" if args.seed else "")
            + (f" --folds {args.folds}" if args.folds != comp.default_folds else ""))


def summary(comp: Competition, recipe: str, study: optuna.Study, args: argparse.Namespace) -> list[str]:
    """What the study found: its best beside the recipe's own params, and the command that trains it."""
    states = [t.state.name.lower() for t in study.get_trials(deepcopy=False)]
    counts = ", ".join(f"{states.count(s)} {s}" for s in sorted(set(states)))
    try:
        best = study.best_trial
    except ValueError:
        return [f"{study.study_name}: no finished trial ({counts})"]
    own = tuning.own_trial(study)
    if own is not None and own.number == best.number:
        return [f"{study.study_name}: no trial beat the recipe's own params, CV {comp.metric.name} {best.value:.5f} "
                f"(trial {best.number}); {counts}",
                f"more trials (--trials N) may; the recipe as it is: python scripts/train.py {comp.name} --recipe "
                f"{recipe}{options(comp, args)}"]
    own_value = own.value if own is not None and own.state == TrialState.COMPLETE else None
    gain = ("" if own is None or own_value is None
            else f", {comp.metric.gain(study.best_value, own_value):.5f} better than the recipe's own params (trial "
                 f"{own.number}: {own_value:.5f})")
    return [f"{study.study_name}: best CV {comp.metric.name} {study.best_value:.5f} (trial {best.number}){gain}; "
            f"{counts}",
            f"train it: python scripts/train.py {comp.name} --recipe {recipe} --params best"
            f"{options(comp, args, storage=True)}"]


if __name__ == "__main__":
    run_main(main)
