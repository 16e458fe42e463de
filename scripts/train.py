#!/usr/bin/env python
"""Cross-validate a competition's recipe on its persisted folds, write a run folder and a validated submission.

    python scripts/train.py titanic                       # default recipe, seed 0, 5 folds
    python scripts/train.py titanic --recipe lgbm --seed 3 --folds 10
    python scripts/train.py titanic --recipe logreg,lgbm,rule   # one run each, then the line that blends them
    python scripts/train.py house-prices --recipe all     # every recipe, one after another
    python scripts/train.py titanic --recipe lgbm --seed 0,1,2   # one run per seed, to blend (seed averaging)
    python scripts/train.py titanic --list-recipes        # what each recipe is
    python scripts/train.py titanic --recipe lgbm --params best          # the best trial of scripts/tune.py
    python scripts/train.py titanic --recipe lgbm --params my-params.json
    python scripts/train.py digit-recognizer --folds-scored all           # the full 5-fold CV of a slow model
    python scripts/train.py titanic --like 20261122-2130   # a run again as it was trained: the same CV, or what
                                                           # differs (code, data, libraries, CPU); --seed 1 to vary
    torchrun --nproc_per_node=2 scripts/train.py digit-recognizer         # data-parallel training (DDP)
"""

import json
import logging
import statistics

import _checkout  # noqa: F401  (the code beside this script, wherever the .venv was made)

import competitions
from common import kaggle_runs, paths, reproduce, submission, tuning
from common.cli import Parser, duration_text, folds_arg, names_arg, parse_args, run_main, scored_arg, seeds_arg
from common.competition import Competition
from common.compute import world
from common.params import params_from_file
from common.resume import Batch
from common.runner import train
from common.runs import RunRecord, find_run, load_runs, rank_by_cv, standing

LONG_RUN_SECONDS = 60  # a single run this long or longer says up front how long it should take


def main() -> int:
    parser = Parser(__doc__)
    parser.add_argument("competition", help=f"one of: {', '.join(competitions.names())}")
    parser.add_argument("--recipe", type=names_arg, action="extend", help="named recipe of the competition "
                        "(default: default; --list-recipes shows them); several (logreg,lgbm or the option again), "
                        "or 'all', train one after another, each a run of its own on the same folds, ready for "
                        "scripts/ensemble.py")
    parser.add_argument("--like", metavar="RUN", help="train again as run RUN was trained (id or unique prefix): its "
                        "recipe, params, seed and folds, then compare the CV with its own; --seed, --folds and "
                        "--folds-scored still change what they name")
    parser.add_argument("--list-recipes", action="store_true", help="list the competition's recipes and exit")
    parser.add_argument("--seed", type=seeds_arg, action="extend", help="model seed (default 0; folds stay fixed "
                        "per competition); several (0,1,2 or the option again) train one run per seed, to blend them "
                        "(seed averaging)")
    parser.add_argument("--folds", type=folds_arg, help="number of CV folds (default: the competition's own, 5 "
                        "except web-traffic's 3 backtest windows)")
    parser.add_argument("--data-dir", help="local mirror holding <slug>/ or <slug>.zip, or that zip itself (else "
                        "KAGGLE_DATA_DIR, /kaggle/input, the cache, the Kaggle API)")
    parser.add_argument("--folds-scored", type=scored_arg,
                        help="folds to score: a number or 'all' (default: the recipe's own - all, except for slow "
                        "models such as the digit CNN, which score one whole held-out fold); row folds score the "
                        "first ones, backtest windows the newest")
    parser.add_argument("--params", help="'best' (best trial of the recipe's study), a JSON file of params, or "
                        "a JSON object written inline: '{\"C\": 0.5}'")
    parser.add_argument("--storage", help="tuning storage for --params best (default: the embedded journal)")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar (nor, where none would show, a log line per fold)")
    args = parse_args(parser)
    comp = competitions.get(args.competition)
    if args.list_recipes:
        print(f"{comp.name} recipes ({comp.metric.name}, {comp.metric.direction_in_words}):")
        print("\n".join(comp.recipe_lines()))
        return 0
    like = None
    params = source = None
    if args.like:
        if args.recipe or args.params:
            parser.error("--like takes the recipe and params from the run; leave out --recipe and --params")
        like = find_run(load_runs(comp.name), args.like, comp.name)
        was = reproduce.settings(like)
        reproduce.check_recipe(like, comp.recipes)
        args.recipe, params, source = [was["recipe_name"]], was["params"], was["params_source"]
        args.seed = args.seed or [was["seed"]]
        args.folds = args.folds or was["n_folds"]
        args.folds_scored = args.folds_scored or (was["folds_scored"] if args.folds == was["n_folds"] else None)
    if args.recipe and "all" in args.recipe and len(args.recipe) > 1:
        parser.error("--recipe all trains every recipe: give it alone, or name the recipes")
    recipes = comp.recipe_names(None if args.recipe == ["all"] else args.recipe or ["default"])
    if len(recipes) > 1 and args.params:
        parser.error("--params changes one recipe: give --recipe one name with it")
    seeds = list(dict.fromkeys(args.seed or [0]))
    if args.params == "best":
        params, source = tuning.best_params(comp, recipes[0], args.storage)
    elif args.params:
        params, source = params_from_file(args.params)
    args.folds = args.folds or comp.default_folds
    scored = args.folds if args.folds_scored == "all" else args.folds_scored
    if scored is not None and scored > args.folds:
        parser.error(f"--folds-scored {scored} is more than --folds {args.folds}")
    jobs = [(recipe, seed) for recipe in recipes for seed in seeds]
    if len(jobs) > 1:
        print(f"{comp.name}: training {len(jobs)} runs, one after another: "
              + ", ".join(recipe if len(seeds) == 1 else f"{recipe} seed {seed}" for recipe, seed in jobs)
              + expected(comp, [recipe for recipe, _ in jobs], args.folds, scored))
    elif (took := seconds_before(comp, load_runs(comp.name), recipes[0], args.folds, scored)) is not None and (
            took >= LONG_RUN_SECONDS):
        print(f"{comp.name} {recipes[0]}: about {duration_text(took)}, going by the runs of this recipe here")
    records = []
    batch = (Batch(comp.name, jobs, folds=args.folds, scored=scored, data_dir=args.data_dir,
                   params=params, like=args.like) if len(jobs) > 1 and world()[1] == 1 else None)
    for recipe, seed in jobs:
        job = f"{recipe} seed {seed}"
        record = _written_before(comp, batch.written(job)) if batch is not None else None
        if record is None:
            record, folder = train(comp, recipe, seed=seed, n_folds=args.folds, data_dir=args.data_dir,
                                   params=params, params_source=source, progress=not args.quiet,
                                   folds_scored=scored, used_by=like.data if like is not None else None)
            if record is None:  # a torchrun process other than rank 0: rank 0 reports
                continue
            logging.getLogger(__name__).info("run folder: %s", folder)
            if batch is not None:
                batch.add(job, record.run_id)
        report(comp, record, like, alone=len(jobs) == 1)
        records.append(record)
    if batch is not None:
        batch.finish()
    if len(records) > 1:
        ranked = rank_by_cv(records, comp.metric)
        best = ranked[0]  # the copy in submissions/ would otherwise be the last recipe's, whatever its CV
        submission.publish(best.folder / best.submission["file"], comp.name)
        print(summary(comp, ranked))
    return 0


def expected(comp: Competition, recipes: list[str], folds: int, scored: int | None) -> str:
    """About how long these runs take, going by the runs of each recipe here on as many folds ('' when there were
    none): a several-run command can take an hour, and the one line up front lets the user decide to wait or not."""
    runs = load_runs(comp.name)
    known = [took for recipe in recipes if (took := seconds_before(comp, runs, recipe, folds, scored)) is not None]
    if not known:
        return ""
    about = f" - about {duration_text(sum(known))}"
    if len(known) == len(recipes):
        return f"{about}, going by the runs of each recipe here"
    return f"{about} for the {len(known)} trained here before, plus {len(recipes) - len(known)} never trained here"


def seconds_before(comp: Competition, runs: list[RunRecord], recipe: str, folds: int,
                   scored: int | None) -> float | None:
    """The median time of the recipe's runs here on as many folds (a run that went on from kept folds took less)."""
    scores = min(scored or comp.recipe(recipe).folds_scored or folds, folds)
    took = [r.seconds["total"] for r in runs if r.recipe == recipe and r.folds.get("n_splits") == folds
            and r.folds_scored == scores and isinstance(r.seconds.get("total"), int | float)]
    return statistics.median(took) if took else None


def _written_before(comp: Competition, run_id: str | None) -> RunRecord | None:
    """The run this command wrote before it was cut short, if its folder is still whole."""
    if run_id is None:
        return None
    try:
        record = RunRecord.read(paths.runs_dir(comp.name) / run_id)
    except (OSError, ValueError, KeyError, TypeError):  # removed (prune.py) or damaged since: trained again
        return None
    logging.getLogger(__name__).info("%s seed %d: run %s, written before this command was cut short; not trained "
                                     "again", record.recipe, record.seed, run_id)
    return record


def report(comp: Competition, record: RunRecord, like: RunRecord | None, alone: bool = True) -> None:
    cv = record.cv
    scored, folds = len(cv["fold_scores"]), record.folds["n_splits"]
    over = (f"on 1 of {folds} folds" if scored == 1 else f"over {scored} folds" if scored == folds
            else f"over {scored} of {folds} folds")
    cv_text = f"{cv['mean']:.5f}" if scored == 1 else record.cv_text()  # the fold count is said once
    peak = record.memory.get("peak_rss_mb")
    print(f"{comp.name} {record.recipe}: CV {comp.metric.name} {cv_text} {over} (oof {cv['oof_score']:.5f}) "
          f"in {record.seconds['total']:.1f}s" + ("" if peak is None else f", peak memory {peak / 1000:.2f} GB"))
    if alone:  # with several runs the summary names the one whose file submissions/ holds, and how it stands
        print(f"submission: {paths.shown(paths.submission_file(comp.name))}  (run {record.run_id})")
        if (place := standing(record, load_runs(comp.name), comp.metric)) is not None:
            print(place)
    if like is not None:
        print(reproduce.verdict(like, record))
        if (code := reproduce.code_of(like, record)) is not None:
            print(code)
    tuned = kaggle_runs.tuned_note(comp, record)
    if tuned is not None:
        print(f"note: {tuned}")
    earlier = kaggle_runs.earlier_submission(comp, record)
    if earlier is not None:  # the same recipe and seed again: submit.py would refuse it without --again
        print(f"note: {earlier}")


def summary(comp: Competition, ranked: list[RunRecord]) -> str:
    """This command's runs (best first), the one whose file submissions/ holds, and the line that blends them (they
    share the folds)."""
    lines = [f"{comp.name}: {len(ranked)} runs by CV {comp.metric.name} ({comp.metric.direction_in_words}):"]
    lines += [f"  {r.cv_text():>20}  {r.recipe:<14} seed {r.seed:<4} {r.run_id}" for r in ranked]
    lines.append(f"submission: {paths.shown(paths.submission_file(comp.name))}  (run {ranked[0].run_id}, the best "
                 "of these by CV)")
    if (place := standing(ranked[0], load_runs(comp.name), comp.metric, ranked[1:])) is not None:
        lines.append(f"the best of these: {place}")  # None when only these runs are on the folds
    lines.append(f"blend them: python scripts/ensemble.py {comp.name} --runs "
                 + " ".join(r.run_id for r in ranked))
    files = {json.dumps(r.data.get("sha256"), sort_keys=True) for r in ranked}
    if len(files) > 1:  # a command cut short, its files changed, then the same command took its written runs
        lines.append(f"note: these runs were trained on {len(files)} different versions of the data files (they "
                     "changed while the command was cut short); the same command again trains them all on the "
                     "current files")
    return "\n".join(lines)


if __name__ == "__main__":
    run_main(main)
