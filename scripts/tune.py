#!/usr/bin/env python
"""Tune a recipe's search space with Optuna on the competition's persisted folds.

    python scripts/tune.py titanic --recipe lgbm --trials 200 --timeout 900
    python scripts/tune.py titanic --recipe lgbm --trials 200 --workers 2
    python scripts/tune.py titanic --recipe lgbm --trials 400 --storage postgresql://user@host/db   # many machines

--trials is the study's total of finished (complete + pruned) trials: the same command again resumes a study that
was stopped or killed. A new study's first trial is the recipe's own params, so its best is never worse on these
folds than the recipe untuned, and the summary says what tuning gained. Then: python scripts/train.py titanic
--recipe lgbm --params best
"""

import argparse

from optuna.trial import TrialState

import competitions
from common import storages, tuning
from common.cli import folds_arg, parse_args, positive_arg, run_main, seconds_arg, seed_arg


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("competition", help=f"one of: {', '.join(competitions.names())}")
    parser.add_argument("--recipe", required=True, help="a recipe with a search space")
    parser.add_argument("--trials", type=positive_arg, help="stop when the study has this many finished trials")
    parser.add_argument("--timeout", type=seconds_arg(1), help="stop starting new trials after this many seconds")
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
    study = tuning.tune(comp, args.recipe, n_trials=args.trials, timeout=args.timeout, storage_url=args.storage,
                        workers=args.workers, seed=args.seed, n_folds=args.folds, data_dir=args.data_dir)
    states = [t.state.name.lower() for t in study.get_trials(deepcopy=False)]
    counts = ", ".join(f"{states.count(s)} {s}" for s in sorted(set(states)))
    try:
        best = study.best_trial
    except ValueError:
        print(f"{study.study_name}: no finished trial ({counts})")
        return 0
    own = tuning.own_trial(study)
    options = ((f" --seed {args.seed}" if args.seed else "")
               + (f" --folds {args.folds}" if args.folds != comp.default_folds else ""))
    if own is not None and own.number == best.number:
        print(f"{study.study_name}: no trial beat the recipe's own params, CV {comp.metric.name} {best.value:.5f} "
              f"(trial {best.number}); {counts}")
        print(f"more trials (--trials N) may; the recipe as it is: python scripts/train.py {comp.name} --recipe "
              f"{args.recipe}{options}")
        return 0
    own_value = own.value if own is not None and own.state == TrialState.COMPLETE else None
    gain = ("" if own is None or own_value is None
            else f", {abs(study.best_value - own_value):.5f} better than the recipe's own params (trial "
                 f"{own.number}: {own_value:.5f})")
    print(f"{study.study_name}: best CV {comp.metric.name} {study.best_value:.5f} (trial {best.number}){gain}; "
          f"{counts}")
    print(f"train it: python scripts/train.py {comp.name} --recipe {args.recipe} --params best"
          + (f" --storage {storages.display_url(args.storage)}" if args.storage else "") + options)
    return 0


if __name__ == "__main__":
    run_main(main)
