#!/usr/bin/env python
"""Compare a competition's recipes on repeated CV (the competition's splitter re-run with other seeds), for choosing
a recipe on more than one fold assignment's luck. Writes no run; prints mean ± std over every fold of every repeat.

    python scripts/compare.py titanic --repeats 4
    python scripts/compare.py titanic --recipes default lgbm --folds 10 --repeats 2
"""

import argparse
import dataclasses
import time

import competitions
from common import data
from common.cli import run_main, setup_logging
from common.cv import cross_validate
from common.folds import Folds, folds_hash


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("competition", help=f"one of: {', '.join(competitions.names())}")
    parser.add_argument("--recipes", nargs="*", help="recipes to compare (default: all)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="model seed")
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    setup_logging()
    comp = competitions.get(args.competition)
    names = args.recipes or list(comp.recipes)
    recipes = {name: comp.recipe(name) for name in names}
    dataset = comp.load(data.fetch(comp, args.data_dir))
    X, _ = comp.features(dataset)
    folds = []
    for repeat in range(args.repeats):
        splitter = dataclasses.replace(comp.folds, seed=comp.folds.seed + repeat)
        fold = splitter.assign(dataset, args.folds)
        folds.extend(Folds(fold, None, folds_hash(fold)))
    print(f"{comp.name}: {args.repeats} x {args.folds}-fold CV, {comp.metric.name} ({comp.metric.direction})")
    for name, recipe in recipes.items():
        started = time.perf_counter()
        result = cross_validate(lambda r=recipe: r.make_model(r.params, args.seed), X, dataset.y, folds,
                                comp.score)
        print(f"  {name:16s} {result.mean:.5f} ± {result.std:.5f}   ({time.perf_counter() - started:.1f}s)")
    return 0


if __name__ == "__main__":
    run_main(main)
