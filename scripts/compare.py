#!/usr/bin/env python
"""Compare a competition's recipes on repeated CV (the competition's splitter re-run with other seeds), for choosing
a recipe on more than one fold assignment's luck. Writes no run; prints mean ± std over every fold of every repeat.
Each finished fold is kept under resume/ until the comparison ends, so an interrupted one goes on where it stopped.

    python scripts/compare.py titanic --repeats 4
    python scripts/compare.py titanic --recipes default lgbm --folds 10 --repeats 2
    python scripts/compare.py disaster-tweets --recipes tfidf --split stratified   # plain random folds, as
                                                                 # Kaggle split train from test (duplicates
                                                                 # straddle folds): a leaderboard-like estimate
    python scripts/compare.py titanic --recipes lgbm --tuned     # default params vs the study's best trial,
                                                                 # on folds other than the ones it was tuned on
    python scripts/compare.py titanic --baseline rule            # paired: each recipe's gain over the rule, and
                                                                 # on the rows where they disagree, who is right
"""


import _checkout  # noqa: F401  (the code beside this script, wherever the .venv was made)

import competitions
from common import comparison, runner
from common.cli import Parser, folds_arg, names_arg, parse_args, repeats_arg, run_main, seed_arg
from common.resume import Resume


def main() -> int:
    parser = Parser(__doc__)
    parser.add_argument("competition", help=f"one of: {', '.join(competitions.names())}")
    parser.add_argument("--recipes", nargs="*", type=names_arg, help="recipes to compare, by spaces or commas (as "
                        "train.py --recipe takes them; default: all)")
    parser.add_argument("--folds", type=folds_arg, help="folds per repeat (default: the competition's own)")
    parser.add_argument("--repeats", type=repeats_arg, default=3, metavar="1..50",
                        help="fold assignments to score each recipe on, each with its own fold seed (default: 3)")
    parser.add_argument("--seed", type=seed_arg, default=0, help="model seed")
    parser.add_argument("--data-dir", help="local mirror of the competition files (as for train.py)")
    parser.add_argument("--tuned", action="store_true", help="also score each recipe's best tuned params")
    parser.add_argument("--storage", help="tuning storage for --tuned (default: the embedded journal)")
    parser.add_argument("--split", choices=["kfold", "stratified", "group", "stratified-group"],
                        help="fold kind instead of the competition's own (row-fold competitions only)")
    parser.add_argument("--first-seed", type=seed_arg, default=None,
                        help="fold seed of the first repeat (default: the competition's own + 1, so none of the "
                             "repeats reuses the persisted folds that tuning used)")
    parser.add_argument("--baseline", help="a recipe to pair every other with: mean fold-score gain over it (positive "
                             "is better, for errors too) ± its standard error (corrected for the training rows the "
                             "folds share: Nadeau & Bengio), and (classification) the rows where their predictions "
                             "differ")
    args = parse_args(parser, competitions.names())
    comp = competitions.get(args.competition)
    names = comp.recipe_names([name for given in args.recipes or [] for name in given] or None)
    if args.baseline:
        comp.recipe(args.baseline)  # a usage error naming the valid recipes if unknown
        names = [args.baseline] + [n for n in names if n != args.baseline]
    found = comparison.candidates(comp, names, args.tuned, args.storage)
    splitter = comparison.splitter(comp, args.split)
    args.folds = args.folds or comp.default_folds
    prep = runner.prepare(comp, args.folds, args.data_dir)
    first = splitter.seed + 1 if args.first_seed is None else args.first_seed
    repeats = comparison.repeated_folds(splitter, prep, args.folds, args.repeats, first)
    kind = repeats[0].folds.spec.get("kind")
    print(f"{comp.name}: {args.repeats} x {args.folds}-fold CV ({kind}), {comp.metric.name} ({comp.metric.direction})")
    base = None
    done: dict[str, comparison.Scored] = {}  # a tuned recipe is paired with its untuned self
    width = max(24, *(len(c.label) for c in found))
    ratio = repeats[0].folds.test_train_ratio()
    # the folds of every recipe and repeat are kept until all are printed; training_here says so when another
    # process trains here: they share the cores
    with Resume(comp.name) as resume, runner.training_here():
        for candidate in found:
            scored = done[candidate.label] = comparison.score(comp, candidate, repeats, args.seed, resume, first)
            scores = scored.fold_scores
            line = f"  {candidate.label:{width}s} {scores.mean():.5f} ± {scores.std():.5f}   ({scored.seconds:.1f}s)"
            if base is None and args.baseline:
                base = scored
                line += "   [baseline]"
            elif base is not None:
                line += "   " + comparison.paired(comp, prep.data.y, base, scored, ratio)
            elif candidate.untuned is not None and candidate.untuned in done:
                line += (f"   against {candidate.untuned}: "
                         + comparison.paired(comp, prep.data.y, done[candidate.untuned], scored, ratio))
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    run_main(main)
