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

import dataclasses
import logging
import time
from typing import Any

import _checkout  # noqa: F401  (the code beside this script, wherever the .venv was made)
import numpy as np

import competitions
from common import runner, tuning
from common.cli import Parser, folds_arg, names_arg, parse_args, repeats_arg, run_main, seed_arg
from common.cv import corrected_std_error
from common.errors import UsageError
from common.resume import Resume
from common.runs import trials_text, won_a_study
from common.splitters import Backtest, RowFolds

log = logging.getLogger("compare")

# The tasks whose pairs also count the rows where two recipes predict another class: only for them are the
# predictions kept until the end, for the others only the fold scores (a full-size Web Traffic backtest's predictions
# are 0.47 GB a repeat, times every recipe and repeat).
FLIPS_COUNTED = ("binary", "multiclass")


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
    # (label, recipe, params, the label of the untuned recipe a tuned one is paired with)
    candidates: list[tuple[str, str, dict[str, Any], str | None]] = []
    for name in names:
        candidates.append((name, name, comp.recipe(name).params, None))
        if args.tuned and (comp.recipe(name).space is not None or comp.recipe(name).members):
            try:
                params, source = tuning.best_params(comp, name, args.storage)
            except UsageError as exc:
                print(f"  ({name}: {exc})")
                continue
            if not won_a_study(source):
                print(f"  ({name}: no tuning trial beat the recipe's own params)")
                continue
            candidates.append((f"{name} (tuned {trials_text(source)})", name, params, name))
    splitter = comp.folds
    if args.split:
        if not isinstance(splitter, RowFolds):
            scored_on = ("backtest windows, which each repeat moves a week further back instead"
                         if isinstance(splitter, Backtest) else f"its own splitter ({type(splitter).__name__})")
            raise UsageError(f"--split chooses a kind of row folds; {comp.name} is scored on {scored_on}: leave "
                             "--split out")
        splitter = splitter.with_kind(args.split)
    args.folds = args.folds or comp.default_folds
    prep = runner.prepare(comp, args.folds, args.data_dir)
    first = splitter.seed + 1 if args.first_seed is None else args.first_seed
    repeats = [dataclasses.replace(prep, folds=splitter.resplit(prep.data, args.folds, first + repeat))
               for repeat in range(args.repeats)]
    kind = repeats[0].folds.spec.get("kind")
    print(f"{comp.name}: {args.repeats} x {args.folds}-fold CV ({kind}), {comp.metric.name} ({comp.metric.direction})")
    base = None
    done = {}  # label -> (fold scores, results): a tuned recipe is paired with its untuned self
    width = max(24, *(len(c[0]) for c in candidates))
    ratio = repeats[0].folds.test_train_ratio()
    # the folds of every recipe and repeat are kept until all are printed; training_here says so when another
    # process trains here: they share the cores
    with Resume(comp.name) as resume, runner.training_here():
        for label, name, params, untuned in candidates:
            started = time.perf_counter()
            results, fold_scores = [], []
            for i, p in enumerate(repeats):
                result = runner.run_cv(p, name, params, args.seed, with_test=False, resume=resume)
                fold_scores.append(result.fold_scores)
                if comp.task in FLIPS_COUNTED:
                    results.append(result)
                log.info("%s: repeat %d/%d (fold seed %d) %s %.5f, %.0f s so far", label, i + 1, len(repeats),
                         first + i, comp.metric.name, result.mean, time.perf_counter() - started)
            scores = np.concatenate(fold_scores)
            done[label] = (scores, results)
            line = (f"  {label:{width}s} {scores.mean():.5f} ± {scores.std():.5f}   "
                    f"({time.perf_counter() - started:.1f}s)")
            if base is None and args.baseline:
                base = (scores, results)
                line += "   [baseline]"
            elif base is not None:
                line += "   " + paired(comp, prep.data.y, base, (scores, results), ratio)
            elif untuned is not None and untuned in done:
                line += f"   against {untuned}: " + paired(comp, prep.data.y, done[untuned], (scores, results), ratio)
            print(line, flush=True)
    return 0


def paired(comp, y, base, other, test_train_ratio: float) -> str:
    """The other recipe against the baseline on the same folds: fold-score gain ± its standard error (folds share
    rows, so the pairing removes the folds' own difficulty; the error is corrected for the training rows the folds
    share, common.cv.corrected_std_error; backtest repeats also share most of their forecast days, which it does not
    count, so there it is still too small), and for classifiers the rows whose predicted class
    differs - how many per repeat and on what share of them the other recipe is right. A gain carried by a handful
    of flipped rows is the kind the leaderboard does not repeat. The gain is in the metric's own direction: positive
    is better, for an error (RMSLE, SMAPE) as for a score."""
    diff = comp.metric.gain(other[0], base[0])
    error = corrected_std_error(diff, test_train_ratio)
    text = f"gain {diff.mean():+.5f}" + ("" if np.isnan(error) else f" ± {error:.5f}")
    if comp.task not in FLIPS_COUNTED:
        return text
    truth = np.asarray(y)
    flips = right = 0
    for b, o in zip(base[1], other[1], strict=True):
        seen = runner.validated(b.oof, cells=False)
        b_cls, o_cls = comp.decode(b.oof[seen]), comp.decode(o.oof[seen])
        differ = b_cls != o_cls
        flips += differ.sum()
        right += (o_cls[differ] == truth[seen][differ]).sum()
    share = f"{right / flips:.0%}" if flips else "-"
    return f"{text}; {flips / len(base[1]):.1f} rows flipped per repeat, right on {share}"


if __name__ == "__main__":
    run_main(main)
