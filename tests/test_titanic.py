"""Titanic end to end on the real files: train, run record, submission, reproducibility, failures."""

import json
import re

import numpy as np
import pandas as pd
import pytest

import competitions
from common import runner
from common.errors import SubmissionError, UsageError
from common.runs import load_runs, update_record

from conftest import run_script

TITANIC = competitions.get("titanic")


def test_fast_recipe_writes_a_complete_run_and_submission(data_dir, kit_home):
    record, folder = runner.train(TITANIC, "fast", seed=0, n_folds=5, progress=False)
    for name in ("run.json", "oof.parquet", "test_pred.parquet", "submission.csv", "log.txt"):
        assert (folder / name).is_file(), name
    stored = json.loads((folder / "run.json").read_text())
    for key in ("seed", "params", "folds", "data", "cv", "seconds", "git_commit", "libraries", "metric"):
        assert key in stored, key
    assert stored["folds"]["hash"] and stored["data"]["sha256"]["train.csv"]
    assert len(stored["cv"]["fold_scores"]) == 5
    assert stored["cv"]["mean"] == pytest.approx(np.mean(stored["cv"]["fold_scores"]))
    assert stored["metric"] == {"name": "accuracy", "direction": "maximize"}

    sub = pd.read_csv(kit_home / "submissions" / "titanic.csv")
    gender = pd.read_csv(data_dir / "titanic" / "gender_submission.csv")
    assert list(sub.columns) == ["PassengerId", "Survived"] and len(sub) == 418
    assert sub["PassengerId"].tolist() == gender["PassengerId"].tolist()
    assert set(sub["Survived"]) <= {0, 1}
    oof = pd.read_parquet(folder / "oof.parquet")
    assert len(oof) == 891 and not oof["oof"].isna().any()


def test_same_command_and_seed_give_the_same_cv(data_dir):
    first, _ = runner.train(TITANIC, "lgbm", seed=3, n_folds=3, progress=False)
    second, _ = runner.train(TITANIC, "lgbm", seed=3, n_folds=3, progress=False)
    assert first["run_id"] != second["run_id"]
    assert first["cv"]["fold_scores"] == second["cv"]["fold_scores"]
    assert first["folds"]["hash"] == second["folds"]["hash"]
    assert len(load_runs("titanic")) == 2  # the second run did not overwrite the first


def test_default_recipe_beats_the_gender_rule_on_the_same_folds(data_dir):
    record, folder = runner.train(TITANIC, "default", seed=0, n_folds=5, progress=False)
    oof = pd.read_parquet(folder / "oof.parquet")
    train = pd.read_csv(data_dir / "titanic" / "train.csv")
    gender = (train["Sex"] == "female").astype(int).to_numpy()
    gender_folds = [np.mean(gender[oof["fold"] == k] == oof["target"][oof["fold"] == k]) for k in range(5)]
    assert record["cv"]["mean"] > np.mean(gender_folds) + 0.02


def test_interrupted_run_leaves_no_run_folder_and_keeps_the_old_submission(data_dir, kit_home, monkeypatch):
    runner.train(TITANIC, "fast", seed=0, n_folds=3, progress=False)
    before = (kit_home / "submissions" / "titanic.csv").read_bytes()
    calls = {"n": 0}
    original = TITANIC.recipes["fast"].make_model

    def interrupting(params, seed):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(params, seed)

    monkeypatch.setitem(TITANIC.recipes, "fast", type(TITANIC.recipes["fast"])("interrupting", interrupting,
                                                                               {"C": 0.3}))
    with pytest.raises(KeyboardInterrupt):
        runner.train(TITANIC, "fast", seed=0, n_folds=3, progress=False)
    runs_dir = kit_home / "runs" / "titanic"
    assert len([p for p in runs_dir.iterdir()]) == 1  # only the first, complete run; no temp folder left
    assert (kit_home / "submissions" / "titanic.csv").read_bytes() == before


def test_nan_predictions_are_refused_before_writing(data_dir, kit_home, monkeypatch):
    from sklearn.dummy import DummyClassifier

    class NanModel(DummyClassifier):
        def predict_proba(self, X):
            proba = super().predict_proba(X).astype(float)
            proba[0] = np.nan
            return proba

    monkeypatch.setitem(TITANIC.recipes, "fast", type(TITANIC.recipes["fast"])(
        "nan", lambda params, seed: NanModel(strategy="prior"), {}))
    with pytest.raises(SubmissionError, match="NaN"):
        runner.train(TITANIC, "fast", seed=0, n_folds=3, progress=False)
    assert not (kit_home / "runs" / "titanic").exists() or not list((kit_home / "runs" / "titanic").iterdir())
    assert not (kit_home / "submissions").exists()


def test_unknown_recipe_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown recipe 'nope'.*default"):
        TITANIC.recipe("nope")


def test_train_script_end_to_end(data_dir, kit_home):
    result = run_script("train.py", "titanic", "--recipe", "fast", "--folds", "3", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "CV accuracy" in result.stdout and "±" in result.stdout
    assert (kit_home / "submissions" / "titanic.csv").is_file()
    # a recipe whose runs here took a minute or more: the next run says up front how long it should take
    [first] = load_runs("titanic")
    update_record(first.path, lambda r: {"seconds": {**r.seconds, "total": 150.0}})
    again = run_script("train.py", "titanic", "--recipe", "fast", "--folds", "3", "--quiet")
    assert again.stdout.splitlines()[0] == "titanic fast: about 2 min 30 s, going by the runs of this recipe here"
    other = run_script("train.py", "titanic", "--recipe", "fast", "--folds", "4", "--quiet")  # other folds: unknown
    assert other.stdout.startswith("titanic fast: CV accuracy")


def test_several_recipes_train_one_run_each_on_the_same_folds(data_dir, kit_home):
    result = run_script("train.py", "titanic", "--recipe", "rule,fast", "--recipe", "rule", "--folds", "3", "--quiet")
    assert result.returncode == 0, result.stderr
    runs = {r.recipe: r for r in load_runs("titanic")}
    assert sorted(runs) == ["fast", "rule"] and len(load_runs("titanic")) == 2  # a name given twice trains once
    assert runs["fast"].folds["hash"] == runs["rule"].folds["hash"]
    best, other = sorted(runs.values(), key=lambda r: r.cv["mean"], reverse=True)
    lines = result.stdout.splitlines()
    assert lines[0] == "titanic: training 2 runs, one after another: rule, fast"
    assert lines[-5] == "titanic: 2 runs by CV accuracy (higher is better):"
    assert lines[-4].split() == [*best.cv_text().split(), best.recipe, "seed", "0", best.run_id]
    # the copy in submissions/ is the best run's file, not the last recipe's
    assert lines[-2].endswith(f"titanic.csv  (run {best.run_id}, the best of these by CV)")
    assert (kit_home / "submissions" / "titanic.csv").read_bytes() == (best.folder / "submission.csv").read_bytes()
    assert lines[-1] == f"blend them: python scripts/ensemble.py titanic --runs {best.run_id} {other.run_id}"
    assert sum(line.startswith("submission:") for line in lines) == 1
    refused = run_script("train.py", "titanic", "--recipe", "rule,fast", "--params", '{"C": 1}')
    assert refused.returncode == 2 and "--params changes one recipe" in refused.stderr
    refused = run_script("train.py", "titanic", "--recipe", "all,lgbm")
    assert refused.returncode == 2 and "--recipe all trains every recipe: give it alone" in refused.stderr
    assert len(load_runs("titanic")) == 2
    # options before the competition still leave it to its positional: one token per option
    seeds = run_script("train.py", "--seed", "0,1", "--recipe", "lgbm", "titanic", "--folds", "3", "--quiet")
    assert seeds.returncode == 0, seeds.stderr
    assert seeds.stdout.splitlines()[0] == "titanic: training 2 runs, one after another: lgbm seed 0, lgbm seed 1"
    assert sorted(r.seed for r in load_runs("titanic") if r.recipe == "lgbm") == [0, 1]
    # where the command's best stands among every run on these folds, as submit.py would rank them
    ranked = sorted(load_runs("titanic"), key=lambda r: r.cv["mean"], reverse=True)
    top = max((r for r in ranked if r.recipe == "lgbm"), key=lambda r: r.cv["mean"])
    assert f"the best of these: #{ranked.index(top) + 1} of 4 runs on these folds by CV" in seeds.stdout
    # trained here before: how long the command should take, up front (each recipe's runs on 3 folds, their median)
    again = run_script("train.py", "titanic", "--recipe", "rule,fast", "--folds", "3", "--quiet")
    assert again.returncode == 0 and again.stdout.splitlines()[0].startswith(
        "titanic: training 2 runs, one after another: rule, fast - about ")
    assert again.stdout.splitlines()[0].endswith(" s, going by the runs of each recipe here")
    single = run_script("train.py", "titanic", "--recipe", "rule", "--seed", "1", "--folds", "3", "--quiet")
    assert single.returncode == 0 and single.stdout.splitlines()[-1].endswith(" of 7 runs on these folds by CV; the "
                                                                             f"best is {ranked[0].recipe} run "
                                                                             f"{ranked[0].run_id} "
                                                                             f"({ranked[0].cv_text()})")


def test_all_recipes_means_each_recipe_once():
    assert TITANIC.recipe_names() == list(TITANIC.recipes)
    digits = competitions.get("digit-recognizer")  # default is cnn under another name: trained once
    chosen = digits.recipe_names()
    assert len(chosen) == len({id(r) for r in digits.recipes.values()}) == len(digits.recipes) - 1
    assert chosen[0] == "default" and "cnn" not in chosen
    assert TITANIC.recipe_names(["rule", "fast", "rule"]) == ["rule", "fast"]


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["nope"], 2, "unknown competition 'nope'; choose one of: titanic, house-prices"),
        (["titanic", "--recipe", "nope"], 2, "unknown recipe 'nope' for titanic; choose one of"),
        (["house_prices"], 2, "unknown competition 'house_prices' (did you mean 'house-prices'?); choose one of"),
        (["titanic", "--recipe", "lgb"], 2, "unknown recipe 'lgb' for titanic (did you mean 'lgbm'?); choose one"),
        (["titanic", "--recipe", "logreg", "--params", '{"c": 1}'], 2,
         "unknown param 'c' for recipe 'logreg' of titanic (did you mean 'C'?); its params are: C=0.1"),
    ],
)
def test_train_script_errors_are_one_line(data_dir, args, code, text):
    result = run_script("train.py", *args)
    assert result.returncode == code
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {text}")
    assert "Traceback" not in result.stderr


def test_an_unknown_name_points_at_the_likely_one():
    """A unique beginning (``digit``), a typo or another case, Kaggle's own name of a competition (its URL and the
    `kaggle` client say ``nlp-getting-started``): each error says which name is meant; a guess only where one fits."""
    from common.errors import UsageError, did_you_mean

    names = competitions.names()
    assert did_you_mean("digit", names) == " (did you mean 'digit-recognizer'?)"
    assert did_you_mean("Titanic", names) == " (did you mean 'titanic'?)"
    assert did_you_mean("web", names) == ""  # begins two names: no guess
    assert did_you_mean("log", TITANIC.recipes) == " (did you mean 'logreg'?)"
    assert did_you_mean("", names) == "" and did_you_mean("xyz", names) == ""
    said = {"house-prices-advanced-regression-techniques": "house-prices", "nlp-getting-started": "disaster-tweets",
            "web-traffic-time-series-forecasting": "web-traffic or web-traffic-stage2"}
    for slug, ours in said.items():
        with pytest.raises(UsageError, match=rf"^unknown competition '{slug}' \(that is Kaggle's name; here it is "
                                             rf"{ours}\); choose one of"):
            competitions.get(slug)


def test_train_script_missing_data_is_one_line(tmp_path, kit_home):
    import os

    env = {**os.environ, "KAGGLE_DATA_DIR": str(tmp_path / "empty")}
    (tmp_path / "empty").mkdir()
    result = run_script("train.py", "titanic", env=env)
    assert result.returncode == 3
    assert "titanic" in result.stderr.strip().splitlines()[-1] and "Traceback" not in result.stderr


def test_compare_script_scores_recipes_on_repeated_folds(data_dir, kit_home):
    result = run_script("compare.py", "titanic", "--recipes", "fast", "rule", "--repeats", "2", "--folds", "3")
    assert result.returncode == 0, result.stderr
    assert "2 x 3-fold CV" in result.stdout
    assert [line.split()[0] for line in result.stdout.splitlines()[1:]] == ["fast", "rule"]
    assert not (kit_home / "runs").exists()  # comparing writes no run


def test_an_interrupted_comparison_goes_on_from_its_finished_folds(data_dir, kit_home, monkeypatch, capsys, caplog):
    """compare.py runs for most of an hour on Disaster Tweets: Ctrl-C must not throw away the repeats it finished."""
    import logging
    import runpy
    import sys

    from conftest import ROOT

    compare = runpy.run_path(str(ROOT / "scripts" / "compare.py"), run_name="compare_script")
    monkeypatch.setattr(sys, "argv", ["compare.py", "titanic", "--recipes", "fast", "--repeats", "3", "--folds", "3"])
    compare["main"]()
    clean = capsys.readouterr().out.splitlines()[-1].rsplit("(", 1)[0]  # the score line, less its seconds

    real, calls = runner.run_cv, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # Ctrl-C during the third repeat
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "run_cv", interrupted)
    with pytest.raises(KeyboardInterrupt):
        compare["main"]()
    assert len(list((kit_home / "resume").rglob("fold-*.pkl"))) == 6  # 2 repeats x 3 folds kept
    from common import prune

    note = prune.resume_note(TITANIC)  # where a user frees space, prune.py says what they are
    assert note is not None and "resume/titanic/ holds 6 finished fold(s) of interrupted runs, " in note
    monkeypatch.setattr(runner, "run_cv", real)
    caplog.set_level(logging.INFO)
    compare["main"]()
    assert capsys.readouterr().out.splitlines()[-1].rsplit("(", 1)[0] == clean
    assert sum("taken from the finished folds kept in" in r.getMessage() for r in caplog.records) == 6
    assert not list((kit_home / "resume").rglob("fold-*.pkl"))  # the finished comparison removes them


def test_compare_pairs_recipes_with_a_baseline_and_counts_flipped_rows(data_dir, kit_home):
    result = run_script("compare.py", "titanic", "--recipes", "fast,default", "--baseline", "rule",
                        "--repeats", "2", "--folds", "3")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()[1:]
    assert [line.split()[0] for line in lines] == ["rule", "fast", "default"] and "[baseline]" in lines[0]
    flipped = {line.split()[0]: float(line.split("; ")[1].split()[0]) for line in lines[1:]}
    assert 0 < flipped["default"] < flipped["fast"]  # the default departs from the rule on the boys only
    bad = run_script("compare.py", "titanic", "--baseline", "nope")
    assert bad.returncode == 2 and "nope" in bad.stderr and "Traceback" not in bad.stderr


def test_default_departs_from_the_rule_only_for_boys_no_family_outcome_decided(data_dir):
    prep = runner.prepare(TITANIC, 5, data_dir)
    X, y = prep.X, prep.data.y
    rule = TITANIC.recipe("rule").make_model({}, 0).fit(X, y).predict(prep.X_test)
    default = TITANIC.recipe("default")
    model = default.make_model(default.params, 0).fit(X, y)
    flipped = model.predict(prep.X_test) != rule
    assert 0 < flipped.sum() < 20
    assert (prep.X_test["Title"][flipped] == "Master").all()
    wide = default.make_model({**default.params, "decide": ["boy", "woman", "man"]}, 0).fit(X, y)
    assert (wide.predict(prep.X_test) != rule).sum() > flipped.sum()
    with pytest.raises(ValueError, match="unknown segments"):
        default.make_model({**default.params, "decide": ["girl"]}, 0).fit(X, y)
    for margin in (-0.1, 0.5):  # below 0 it would mean 0, from 0.5 the model could never decide
        with pytest.raises(ValueError, match="margin"):
            default.make_model({**default.params, "margin": margin}, 0).fit(X, y)


def test_compare_scores_stacks_and_other_fold_kinds(data_dir, kit_home):
    stack = run_script("compare.py", "house-prices", "--recipes", "fast", "--repeats", "1", "--folds", "3",
                       "--split", "kfold")
    assert stack.returncode == 0, stack.stderr
    assert "1 x 3-fold CV (kfold)" in stack.stdout and stack.stdout.splitlines()[1].split()[0] == "fast"
    scores = {}
    for kind in ("stratified", "kfold"):
        result = run_script("compare.py", "titanic", "--recipes", "fast", "--repeats", "1", "--split", kind)
        assert result.returncode == 0, result.stderr
        scores[kind] = result.stdout.splitlines()[1].split()[1]
    assert scores["stratified"] != scores["kfold"]  # the fold kind really changed the folds
    ungrouped = run_script("compare.py", "titanic", "--recipes", "fast", "--repeats", "1", "--split", "group")
    assert ungrouped.returncode == 2 and "Traceback" not in ungrouped.stderr
    assert "splitter defines no groups; choose kfold or stratified" in ungrouped.stderr.strip().splitlines()[-1]
    windows = run_script("compare.py", "web-traffic", "--recipes", "median", "--split", "kfold")
    assert windows.returncode == 2 and windows.stderr.strip().splitlines()[-1] == (
        "error: --split chooses a kind of row folds; web-traffic is scored on backtest windows, which each repeat "
        "moves a week further back instead: leave --split out")
    # --tuned where nothing was tuned yet: said once, and the recipe is still scored as it is
    untuned = run_script("compare.py", "titanic", "--recipes", "logreg", "--tuned", "--repeats", "1", "--folds", "3")
    assert untuned.returncode == 0, untuned.stderr
    assert "(logreg: no tuning storage at" in untuned.stdout and "tuned #" not in untuned.stdout
    assert [line.split()[0] for line in untuned.stdout.splitlines() if line.startswith("  logreg")] == ["logreg"]


@pytest.mark.parametrize("name", competitions.names())
def test_list_recipes_names_each_recipe_and_what_it_is_without_any_work(kit_home, name):
    comp = competitions.get(name)
    result = run_script("train.py", name, "--list-recipes")
    assert result.returncode == 0, result.stderr
    listed = [line.split()[0] for line in result.stdout.splitlines()[1:] if line.startswith("  ") and line[2] != " "]
    assert listed == sorted(comp.recipes)
    assert comp.recipes["default"].description.split()[0] in result.stdout and not any(kit_home.iterdir())


@pytest.mark.parametrize("script", ["train.py", "download.py", "tune.py", "compare.py", "ensemble.py", "drift.py",
                                    "submit.py", "leaderboard.py"])
def test_scripts_have_help_for_every_option(script):
    result = run_script(script, "--help")
    assert result.returncode == 0 and "usage:" in result.stdout
    options = result.stdout.split("options:")[1].splitlines()[1:]
    for i, line in enumerate(options):  # an option's help follows it on its line or on the next, further indented
        if line.startswith("  -"):
            after = line.strip().split("  ", 1)
            follows = i + 1 < len(options) and options[i + 1].startswith(" " * 10)
            assert len(after) == 2 or follows, f"{script}: {line.strip()} has no help"
    assert re.search(r"--verbose +debug logging", result.stdout)


def test_every_recipe_param_is_a_real_model_parameter():
    """A misspelt LightGBM param is silently ignored by LightGBM; catch it here for every competition."""
    import inspect

    import optuna
    from lightgbm import LGBMModel
    from lightgbm.basic import _ConfigAliases

    known = set(inspect.signature(LGBMModel.__init__).parameters)
    for canonical, names in _ConfigAliases._get_all_param_aliases().items():
        known |= {canonical, *names}
    for name in competitions.names():
        comp = competitions.get(name)
        for recipe_name, recipe in comp.recipes.items():
            if "lgbm" not in recipe_name or recipe.make_model.__module__.startswith("competitions.web_traffic"):
                continue  # web traffic's global LightGBM forecaster takes its own params (its __init__ checks them)
            sampled = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
            for params in (recipe.params, recipe.space(sampled) if recipe.space else {}):
                unknown = set(params) - known
                assert not unknown, f"{name}/{recipe_name}: unknown LightGBM params {unknown}"


def test_every_recipe_builds_from_its_params_and_stack_overrides():
    """A recipe whose params do not fit its model (a typo, a removed option) fails here, not after minutes of CV -
    including a stack's changes to its members, which must name params the member declares."""
    from common.params import resolve

    for name in competitions.names():
        comp = competitions.get(name)
        for recipe_name, recipe in comp.recipes.items():
            assert resolve(comp, recipe_name) is not None, f"{name}/{recipe_name}"
            if recipe.members:
                assert set(recipe.params.get("members", {})) <= set(recipe.members), f"{name}/{recipe_name}"
                for member in recipe.members:
                    params = recipe.params.get("members", {}).get(member, comp.recipe(member).params)
                    assert hasattr(comp.recipe(member).make_model(params, 0), "fit"), f"{name}/{member}"
                params = recipe.params.get("meta", {})
            else:
                params = recipe.params
            assert hasattr(recipe.make_model(params, 0), "fit"), f"{name}/{recipe_name}"


def test_a_run_records_its_own_peak_memory(data_dir, kit_home):
    """run.json and the run's line say how much memory it took - its own peak, not that of what the process did
    before it (a several-run command's earlier, bigger run)."""
    from common import compute
    from common.runs import RunRecord

    if compute.peak_memory_bytes() is None:
        pytest.skip("this platform does not say a process's peak memory")
    big = np.ones(400_000_000 // 8)  # 400 MB, gone before the run starts
    before = compute.peak_memory_bytes()
    del big
    record, _ = runner.train(TITANIC, "fast", n_folds=3, progress=False)
    assert record is not None
    peak = record.memory["peak_rss_mb"] * 1e6
    assert 0 < peak < before - 200e6
    assert RunRecord.read(record.path).memory == record.memory
