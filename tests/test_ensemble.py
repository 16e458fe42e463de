"""Ensembles of finished runs: honest nested CV, every prediction shape (rows, class probabilities, series x days),
the result as an ordinary run, and the bad inputs of scripts/ensemble.py."""

import json
import re
import shutil
import threading

import numpy as np
import pandas as pd
import pytest

import competitions
from common import blending, ensemble_runs, runner
from common.errors import DataError
from common.metrics import ACCURACY, RMSLE, ROC_AUC, SMAPE
from common.runs import RunRecord, load_runs

from conftest import env_for, run_script

TITANIC = competitions.get("titanic")
HP = competitions.get("house-prices")


def last_line(result) -> str:
    return result.stderr.strip().splitlines()[-1]


# -- the pure blending ---------------------------------------------------------------------------------------------
def _masks(n: int, k: int) -> list[np.ndarray]:
    fold = np.arange(n) % k
    return [fold == j for j in range(k)]


def test_nested_weights_never_see_the_fold_they_score():
    """A member that is perfect on fold 0 only (it saw those labels) and noise elsewhere: the weights that score
    fold 0 come from the other folds, where it is useless, so the blend does not inherit its fold-0 perfection."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 600)
    masks = _masks(600, 3)
    honest = np.clip(y * 0.4 + 0.3 + rng.normal(0, 0.25, 600), 0, 1)
    leaky = rng.random(600)
    leaky[masks[0]] = y[masks[0]]
    score = ACCURACY
    result = blending.nested("hill", [honest, leaky], [honest[:10], leaky[:10]], y, masks,
                             lambda t, p: score(t, (p >= 0.5).astype(int)), ACCURACY)
    assert result.fold_weights[0][1] <= 0.1  # chosen on folds 1-2, where the leaky member is noise
    honest_fold0 = ACCURACY(y[masks[0]], (honest[masks[0]] >= 0.5).astype(int))
    assert result.fold_scores[0] < 0.95 and abs(result.fold_scores[0] - honest_fold0) < 0.03


def test_hill_climb_beats_its_members_when_they_err_differently():
    rng = np.random.default_rng(1)
    y = rng.lognormal(12, 0.4, 900)
    a = y * rng.lognormal(0, 0.15, 900)
    b = y * rng.lognormal(0, 0.15, 900)
    result = blending.nested("hill", [a, b], [a[:5], b[:5]], y, _masks(900, 3), RMSLE, RMSLE)
    singles = [np.mean([RMSLE(y[m], p[m]) for m in _masks(900, 3)]) for p in (a, b)]
    assert np.mean(result.fold_scores) < min(singles) - 0.02
    assert result.weights.sum() == pytest.approx(1) and (result.weights > 0.3).all()
    five = blending.nested("hill", [a, b], [a[:5], b[:5]], y, _masks(900, 5), RMSLE, RMSLE)
    assert five.shrink == 1.0 and five.fold_shrink == [1.0] * 5  # the blend wins on every held-out fold: kept whole
    # averaged on the log scale RMSLE scores: the blend of two prices is their geometric mean
    even = blending.Blend(np.array([0.5, 0.5])).apply([np.array([100.0]), np.array([400.0])], blending.LOG1P)
    assert even[0] == pytest.approx(np.expm1((np.log1p(100) + np.log1p(400)) / 2))


def test_a_hill_blend_is_shrunk_towards_its_first_pick_as_far_as_held_out_folds_say():
    """A member right on two folds and wrong on the others fools the hill on the folds that include those two; one
    level further in, leaving each choosing fold out, shows it - the blend keeps less of itself there."""
    rng = np.random.default_rng(5)
    y = rng.lognormal(12, 0.4, 1000)
    masks = _masks(1000, 5)
    good = y * rng.lognormal(0, 0.12, 1000)
    lucky = y * rng.lognormal(0, 0.6, 1000)
    for m in masks[:2]:
        lucky[m] = y[m]  # perfect where it happens to be
    result = blending.nested("hill", [good, lucky], [good[:3], lucky[:3]], y, masks, RMSLE, RMSLE)
    plain = blending.nested("hill", [good, lucky], [good[:3], lucky[:3]], y, masks, RMSLE, RMSLE, shrink=False)
    assert min(result.fold_shrink) < 1.0 and plain.fold_shrink == [1.0] * 5
    assert np.mean(result.fold_scores) < np.mean(plain.fold_scores)
    blend = blending.Blend(np.array([0.6, 0.4]), lead=1).towards_lead(0.5)
    assert np.allclose(blend.weights, [0.3, 0.7]) and blend.shrink == 0.5 and blend.lead == 1


def test_the_hill_chooses_without_rows_no_member_explains_and_still_scores_them(monkeypatch):
    """Four sales far below every member's price, all in fold 2 (as House Prices' persisted folds hold both partial
    sales): choosing on them tips every blend that fold 2 helps choose towards the member that is merely less wrong
    there, and worse on every ordinary house. Left out of the choice (not of the scores), they no longer do."""
    rng = np.random.default_rng(7)
    y = rng.lognormal(12, 0.4, 1000)
    masks = _masks(1000, 5)
    fine = y * rng.lognormal(0, 0.10, 1000)
    blunt = y * rng.lognormal(0, 0.13, 1000)
    odd = np.flatnonzero(masks[2])[:4]
    y[odd] /= 6
    blunt[odd] = y[odd] * 2.5
    robust = blending.nested("hill", [fine, blunt], [fine[:3], blunt[:3]], y, masks, RMSLE, RMSLE)
    monkeypatch.setitem(blending.SPACES, "rmsle", blending.LOG1P)  # the same space without ``far``
    every_row = blending.nested("hill", [fine, blunt], [fine[:3], blunt[:3]], y, masks, RMSLE, RMSLE)
    assert robust.left_out == 4 and every_row.left_out == 0
    for k in (0, 1, 3, 4):  # chosen with fold 2 among the choosing folds
        assert robust.fold_weights[k][0] > every_row.fold_weights[k][0]
        assert robust.fold_scores[k] < every_row.fold_scores[k]
    assert robust.fold_scores[2] == pytest.approx(RMSLE(y[masks[2]], robust.oof[masks[2]]))  # the odd rows scored
    assert np.mean(robust.fold_scores) < np.mean(every_row.fold_scores)
    monkeypatch.undo()
    y[masks[2]] /= 6  # a fold that no member explains at all keeps its rows: there is nothing else to choose on
    whole = blending.nested("hill", [fine, blunt], [fine[:3], blunt[:3]], y, masks, RMSLE, RMSLE)
    assert whole.left_out == 0 and np.isfinite(whole.fold_scores).all()


def test_class_probabilities_and_series_blend_alike():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 300)
    onehot = np.eye(3)[y]
    a = 0.6 * onehot + 0.4 * rng.dirichlet(np.ones(3), 300)
    b = 0.6 * onehot + 0.4 * rng.dirichlet(np.ones(3), 300)
    for method in ("hill", "nnls"):
        result = blending.nested(method, [a, b], [a[:4], b[:4]], y, _masks(300, 3),
                                 lambda t, p: ACCURACY(t, p.argmax(axis=1)), ACCURACY)
        assert result.oof.shape == (300, 3) and result.test_pred.shape == (4, 3)
        assert np.allclose(result.test_pred.sum(axis=1), 1)
    truth = rng.poisson(20, (50, 30)).astype(float)
    truth[0, :5] = np.nan  # missing actuals are skipped
    cells = [np.zeros((50, 30), bool) for _ in range(3)]
    for k in range(3):
        cells[k][:, k * 10:(k + 1) * 10] = True  # windows of days, as a backtest cuts them
    f1, f2 = truth * rng.lognormal(0, 0.3, truth.shape), truth * rng.lognormal(0, 0.3, truth.shape)
    f1[0, :5] = f2[0, :5] = 7
    result = blending.nested("nnls", [f1, f2], [f1[:, :4], f2[:, :4]], truth, cells, SMAPE, SMAPE)
    assert result.oof.shape == (50, 30) and np.mean(result.fold_scores) < min(SMAPE(truth, f1), SMAPE(truth, f2))


def test_rank_averages_only_for_ranking_metrics():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 400)
    a, b = y + rng.normal(0, 1, 400), 100 * (y + rng.normal(0, 1, 400))  # different scales: ranks make them alike
    result = blending.nested("rank", [a, b], [a[:5], b[:5]], y, _masks(400, 4), ROC_AUC, ROC_AUC)
    assert np.mean(result.fold_scores) > max(ROC_AUC(y, a), ROC_AUC(y, b)) - 0.01
    with pytest.raises(Exception, match="only suits metrics that score order"):
        blending.nested("rank", [a, b], [a, b], y, _masks(400, 4), ACCURACY, ACCURACY)


# -- on real runs --------------------------------------------------------------------------------------------------
def test_house_prices_ensemble_is_an_ordinary_run_that_beats_its_members(data_dir, kit_home):
    for recipe in ("svr", "lgbm"):
        runner.train(HP, recipe, n_folds=5, progress=False)
    result = run_script("ensemble.py", "house-prices", env=env_for(kit_home, data_dir=data_dir))
    assert result.returncode == 0, result.stderr
    record = next(r for r in load_runs("house-prices") if r.ensemble)
    members = {r.run_id: r for r in load_runs("house-prices") if not r.ensemble}
    assert set(record.params["runs"]) == set(members)
    assert {r.folds["hash"] for r in members.values()} == {record.folds["hash"]}
    assert record.cv["mean"] < min(r.cv["mean"] for r in members.values())  # kernel and trees err differently
    assert "#1 of 3 runs on these folds by CV, " in result.stdout  # where it stands, as for any run
    assert sum(record.ensemble["weights"].values()) == pytest.approx(1)
    assert len(record.ensemble["fold_weights"]) == 5 and record.ensemble["space"] == "log1p"
    assert {record.ensemble["shrink"], *record.ensemble["fold_shrink"]} <= set(blending.SHRINK)
    assert record.ensemble["left_out_of_choice"] >= 2  # at least the two partial sales, which neither run prices
    # each fold is the blend of the members' out-of-fold prices with that fold's own weights
    oof = pd.read_parquet(record.path / "oof.parquet")
    for k, weights in enumerate(record.ensemble["fold_weights"]):
        rows = oof["fold"] == k
        blended = np.expm1(sum(w * np.log1p(oof.loc[rows, f"oof_{i}"]) for i, w in weights.items()))
        assert np.allclose(blended, oof.loc[rows, "oof"])
        assert record.cv["fold_scores"][k] == pytest.approx(HP.score(oof.loc[rows, "target"], blended))
    sub = pd.read_csv(record.path / "submission.csv")
    assert len(sub) == 1459 and (sub["SalePrice"] > 0).all()
    published = (kit_home / "submissions" / "house-prices.csv").read_bytes()
    assert published == (record.path / "submission.csv").read_bytes()
    assert "best single run" in result.stdout and "note:" not in result.stdout


def test_forecast_runs_blend_by_day(data_dir, kit_home):
    wt = competitions.get("web-traffic")
    runner.train(wt, "median", n_folds=3, progress=False)
    runner.train(wt, "fast", n_folds=3, progress=False)
    record, skipped, best = ensemble_runs.build(wt, method="nnls")
    assert not skipped and record.cv["folds_scored"] == 3
    oof = pd.read_parquet(record.path / "oof.parquet")
    assert oof.shape == (4519, 1 + 180)  # three 60-day windows
    sub = pd.read_csv(record.path / "submission.csv")
    assert list(sub.columns) == ["Id", "Visits"] and (sub["Visits"] >= 0).all()
    assert record.cv["mean"] <= best["cv_mean"] + 0.5
    # visits are counts: the blend was rounded where that lowered SMAPE on the choosing folds (a blend that is all
    # of the already rounded `fast` run gains nothing from it), and the test forecast is whole visits
    assert record.ensemble["rounded"] and len(record.ensemble["fold_rounded"]) == 3
    assert (sub["Visits"] == sub["Visits"].round()).all()


def test_count_blends_are_rounded_only_where_it_scores_better():
    rng = np.random.default_rng(4)
    truth = rng.poisson(0.8, (200, 60)).astype(float)  # small counts: 0.4 against 0 costs SMAPE's full 200 %
    f1, f2 = truth + rng.normal(0, 0.4, truth.shape).clip(-0.3), truth * rng.lognormal(0, 0.2, truth.shape)
    cells = [np.zeros(truth.shape, bool) for _ in range(3)]
    for k in range(3):
        cells[k][:, k * 20:(k + 1) * 20] = True
    plain = blending.nested("hill", [f1, f2], [f1, f2], truth, cells, SMAPE, SMAPE)
    counted = blending.nested("hill", [f1, f2], [f1, f2], truth, cells, SMAPE, SMAPE, counts=True)
    assert counted.rounded and all(counted.fold_rounded) and not plain.rounded
    assert np.mean(counted.fold_scores) < np.mean(plain.fold_scores)
    assert (counted.test_pred == np.round(counted.test_pred)).all()
    big = truth * 1000 + 0.5  # large counts: rounding changes nothing that matters, and is kept only if it helps
    fine = blending.nested("hill", [big * 1.01, big * 0.99], [big, big], big, cells, SMAPE, SMAPE, counts=True)
    assert np.mean(fine.fold_scores) <= np.mean(blending.nested("hill", [big * 1.01, big * 0.99], [big, big], big,
                                                                cells, SMAPE, SMAPE).fold_scores) + 1e-9


def test_large_folds_choose_the_weights_on_a_fixed_sample_of_series_and_score_every_cell(monkeypatch):
    """Web Traffic at full size has 9 million cells a fold: the weights are chosen on a fixed sample of the pages,
    the same in every fold and every run; every cell is still blended and scored. Where members err alike on every
    page the weights are the whole panel's within a step or two."""
    rng = np.random.default_rng(5)
    truth = rng.poisson(30, (2000, 60)).astype(float)
    cells = [np.zeros(truth.shape, bool) for _ in range(4)]
    for k in range(4):
        cells[k][:, k * 15:(k + 1) * 15] = True  # 30 000 cells a fold
    a, b = truth * rng.lognormal(0, 0.3, truth.shape), truth * rng.lognormal(0.05, 0.2, truth.shape)
    whole = blending.nested("hill", [a, b], [a[:, :5], b[:, :5]], truth, cells, SMAPE, SMAPE, counts=True)
    assert whole.chosen_on is None
    monkeypatch.setattr(blending, "CHOOSE_CELLS", 6_000)  # a fifth of the pages
    sampled = blending.nested("hill", [a, b], [a[:, :5], b[:, :5]], truth, cells, SMAPE, SMAPE, counts=True)
    again = blending.nested("hill", [a, b], [a[:, :5], b[:, :5]], truth, cells, SMAPE, SMAPE, counts=True)
    assert sampled.chosen_on == 400 and np.array_equal(sampled.oof, again.oof, equal_nan=True)
    assert not np.isnan(sampled.oof[np.logical_or.reduce(cells)]).any()  # every cell blended
    assert sampled.fold_scores == [SMAPE(truth[m], sampled.oof[m]) for m in cells]  # and scored
    assert np.abs(sampled.weights - whole.weights).max() <= 0.1
    assert abs(np.mean(sampled.fold_scores) - np.mean(whole.fold_scores)) < 0.2
    # the hill sees the sample alone: a run exact on the sampled pages and far off on the others takes it all, and
    # its fold scores - every page - show what that costs; the shrinkage, chosen on every page, undoes it
    chosen = blending.series_sample(cells, 6_000)
    lucky = np.where(chosen[:, None], truth, truth * 3)
    fooled = blending.nested("hill", [a, lucky], [a[:, :5], lucky[:, :5]], truth, cells, SMAPE, SMAPE, shrink=False)
    assert np.array_equal(fooled.weights, [0.0, 1.0]) and np.mean(fooled.fold_scores) > SMAPE(truth, a)
    shrunk = blending.nested("hill", [a, lucky], [a[:, :5], lucky[:, :5]], truth, cells, SMAPE, SMAPE)
    assert np.array_equal(shrunk.weights, [1.0, 0.0]) and shrunk.shrink == 0.0


def test_the_choices_made_side_by_side_are_the_ones_made_one_after_another(monkeypatch):
    """Each set of folds' choice runs in a thread of its own (numpy works outside the GIL): the same weights, shares
    and forecasts as one after another, and no set is chosen twice."""
    rng = np.random.default_rng(6)
    truth = rng.poisson(3, (300, 50)).astype(float)
    cells = [np.zeros(truth.shape, bool) for _ in range(5)]
    for k in range(5):
        cells[k][:, k * 10:(k + 1) * 10] = True
    runs = [truth * rng.lognormal(0, s, truth.shape) for s in (0.2, 0.3, 0.4)]
    made = []
    real_choose = blending.choose
    monkeypatch.setattr(blending, "choose", lambda *a, **k: made.append(threading.current_thread().name)
                        or real_choose(*a, **k))
    results = {}
    for threads in ("1", "2"):
        monkeypatch.setenv("KIT_THREADS", threads)
        made.clear()
        results[threads] = (blending.nested("hill", runs, runs, truth, cells, SMAPE, SMAPE, counts=True), len(made))
    (one, one_made), (two, two_made) = results["1"], results["2"]
    assert two_made == one_made == 2 * 16  # plain and rounded: 5 sets of 4 folds, 10 of 3, all 5
    assert all(name.startswith("blend") for name in made)  # every choice made side by side, none left to the end
    assert np.array_equal(one.oof, two.oof, equal_nan=True) and np.array_equal(one.test_pred, two.test_pred)
    assert one.fold_scores == two.fold_scores and one.fold_shrink == two.fold_shrink
    assert all(np.array_equal(a, b) for a, b in zip(one.fold_weights, two.fold_weights, strict=True))


# -- bad input -----------------------------------------------------------------------------------------------------
def test_no_runs_and_one_run_are_one_line_errors(data_dir, kit_home):
    env = env_for(kit_home, data_dir=data_dir)
    result = run_script("ensemble.py", "titanic", env=env)
    assert result.returncode == 2 and "no runs of titanic yet" in last_line(result)
    runner.train(TITANIC, "fast", n_folds=5, progress=False)
    result = run_script("ensemble.py", "titanic", env=env)
    assert result.returncode == 2 and "at least two runs" in last_line(result) and "Traceback" not in result.stderr
    result = run_script("ensemble.py", "titanic", "--runs", "20990101-000000-nope-000000", env=env)
    assert result.returncode == 2 and "no run 20990101-000000-nope-000000" in last_line(result)
    # a slow model's run that scored one held-out fold (the digit CNN's default) cannot be blended honestly
    one_fold, _ = runner.train(TITANIC, "logreg", n_folds=5, progress=False, folds_scored=1)
    result = run_script("ensemble.py", "titanic", env=env)
    assert result.returncode == 2 and one_fold.run_id in last_line(result) and "--folds-scored all" in last_line(result)


def test_runs_on_other_folds_and_broken_members_are_skipped_with_the_reason(data_dir, kit_home):
    env = env_for(kit_home, data_dir=data_dir)
    for recipe in ("fast", "logreg", "rule"):
        runner.train(TITANIC, recipe, n_folds=5, progress=False)
    other, _ = runner.train(TITANIC, "fast", n_folds=3, progress=False)
    fast, logreg, rule = sorted((r for r in load_runs("titanic") if r.folds["n_splits"] == 5),
                                key=lambda r: ["fast", "logreg", "rule"].index(r.recipe))
    (rule.path / "oof.parquet").write_bytes(b"not parquet")
    result = run_script("ensemble.py", "titanic", env=env)
    assert result.returncode == 0, result.stderr
    assert f"skipped {other.run_id}: on other folds" in result.stdout
    assert f"skipped {rule.run_id}: its prediction files cannot be read" in result.stdout
    assert "WARNING" in result.stderr and rule.run_id in result.stderr
    record = next(r for r in load_runs("titanic") if r.ensemble)
    assert set(record.params["runs"]) == {fast.run_id, logreg.run_id}
    # a blend that loses to its best member in nested CV says which run submit.py would send instead
    best = max(fast.cv["mean"], logreg.cv["mean"])
    loses = TITANIC.metric.is_better(best, record.cv["mean"])
    assert ("note: the blend's nested CV is below" in result.stdout) == loses

    # NaN in a member's predictions: refused, naming the run, and no ensemble run written
    oof = pd.read_parquet(logreg.path / "oof.parquet")
    oof.loc[3, "oof"] = np.nan
    oof.to_parquet(logreg.path / "oof.parquet")
    before = len(load_runs("titanic"))
    # the competition after the run ids (a list option takes every word up to the next option) is still found
    result = run_script("ensemble.py", "--runs", fast.run_id, logreg.run_id, "titanic", env=env)
    assert result.returncode == 3 and logreg.run_id in last_line(result) and "NaN" in last_line(result)
    assert len(load_runs("titanic")) == before

    result = run_script("ensemble.py", "titanic", "--method", "rank", env=env)
    assert result.returncode == 2 and "use hill or nnls" in last_line(result)


def test_runs_are_blended_on_the_files_they_were_trained_on(shared_kaggle, tmp_path, kit_home):
    """Trained with --data-dir: an ensemble finds those files without it; other files (same rows, so the same
    folds) are refused rather than scoring the members against labels they were not trained on."""
    shutil.copytree(shared_kaggle / "titanic", tmp_path / "mirror" / "titanic")
    for recipe in ("fast", "logreg"):
        runner.train(TITANIC, recipe, n_folds=5, data_dir=tmp_path / "mirror", progress=False)
    record, _, _ = ensemble_runs.build(TITANIC)
    assert record.data["folder"] == str((tmp_path / "mirror" / "titanic").resolve())
    shutil.copytree(shared_kaggle / "titanic", tmp_path / "other" / "titanic")
    train = tmp_path / "other" / "titanic" / "train.csv"
    train.write_bytes(train.read_bytes().replace(b"\r\n", b"\n"))
    with pytest.raises(DataError, match="not the ones these runs were trained on"):
        ensemble_runs.build(TITANIC, data_dir=tmp_path / "other")


def test_runs_on_the_most_used_files_are_blended_and_the_others_skipped(shared_kaggle, tmp_path, kit_home):
    """Same rows, other bytes (so the same folds): the runs on the files most runs used are blended, whichever run
    came first; a member whose predictions no longer cover the competition's rows is skipped, not misaligned."""
    shutil.copytree(shared_kaggle / "titanic", tmp_path / "old" / "titanic")
    train = tmp_path / "old" / "titanic" / "train.csv"
    train.write_bytes(train.read_bytes().replace(b"\r\n", b"\n"))
    old, _ = runner.train(TITANIC, "fast", n_folds=5, data_dir=tmp_path / "old", progress=False)
    shutil.copytree(shared_kaggle / "titanic", tmp_path / "new" / "titanic")
    new = [runner.train(TITANIC, recipe, n_folds=5, data_dir=tmp_path / "new", progress=False)[0]
           for recipe in ("fast", "logreg", "rule")]
    assert old.folds["hash"] == new[0].folds["hash"] and old.data["sha256"] != new[0].data["sha256"]
    short = new[2]
    oof = pd.read_parquet(short.path / "oof.parquet")
    oof.iloc[:-1].to_parquet(short.path / "oof.parquet")

    record, skipped, _ = ensemble_runs.build(TITANIC)
    assert set(record.params["runs"]) == {new[0].run_id, new[1].run_id}
    reasons = dict(skipped)
    assert reasons[old.run_id] == "trained on other data files (their sha256 differ)"
    assert "out-of-fold file rows are not the competition's 891 PassengerId values" in reasons[short.run_id]


def test_an_ensemble_is_not_blended_again_and_its_record_reads_back(data_dir, kit_home):
    for recipe in ("fast", "logreg"):
        runner.train(TITANIC, recipe, n_folds=5, progress=False)
    first, _, _ = ensemble_runs.build(TITANIC)
    second, skipped, _ = ensemble_runs.build(TITANIC, max_members=1)
    assert (first.run_id, "an ensemble itself (its weights already saw every fold's labels)") in skipped
    assert len(second.ensemble["weights"]) == 1
    again = RunRecord.read(second.path)
    assert again.ensemble == json.loads((second.path / "run.json").read_text())["ensemble"]
    assert again.params_source == {"kind": "ensemble"} and again.recipe == "ensemble"
    shutil.rmtree(second.path)


def test_an_ensemble_outlives_a_member_folder_deleted_by_hand(data_dir, kit_home):
    """README: a run folder may be removed with rm -r; the ensemble that blended it keeps its own predictions, so the
    report still lists it and submit.py still validates and would send it."""
    runs = [runner.train(TITANIC, recipe, n_folds=5, progress=False)[0] for recipe in ("fast", "logreg")]
    ensemble, _, _ = ensemble_runs.build(TITANIC)
    assert runs[0] is not None
    shutil.rmtree(runs[0].path)
    env = env_for(kit_home, data_dir=data_dir)
    report = run_script("leaderboard.py", "titanic", env=env)
    assert report.returncode == 0, report.stderr
    assert ensemble.run_id in report.stdout and runs[0].run_id not in report.stdout
    assert ensemble.run_id in (kit_home / "reports" / "leaderboard.md").read_text()
    sent = run_script("submit.py", "titanic", "--run", ensemble.run_id, "--dry-run", env=env)
    assert sent.returncode == 0, sent.stderr
    assert "is valid (418 rows)" in sent.stdout and "dry run: would submit" in sent.stdout
    again = run_script("ensemble.py", "titanic", env=env)  # one run left: a one-line error, not a traceback
    assert again.returncode != 0 and again.stderr.strip().splitlines()[-1].startswith("error: ")


def test_the_shrinkage_line_says_where_too_few_folds_chose_no_share():
    shares = {"shrink": 0.5, "fold_shrink": [1.0, 0.75, 0.5, 1.0]}
    assert ensemble_runs.describe_shrink(shares, 4) == "0.5 for the test weights, 1, 0.75, 0.5, 1 per fold"
    three = ensemble_runs.describe_shrink({"shrink": 0.25, "fold_shrink": [1.0] * 3}, 3)
    assert three.startswith("0.25 for the test weights;") and "only 2 other fold(s)" in three
    assert ensemble_runs.describe_shrink({"shrink": 1.0, "fold_shrink": [1.0] * 2}, 2).startswith("not chosen")


def test_members_tuned_on_the_folds_are_flagged_with_what_that_means_for_the_blend(data_dir, kit_home):
    from common import tuning

    tuning.tune(TITANIC, "lgbm", n_trials=7)  # seeded: trial 6 beats the recipe's own params (trial 0)
    params, source = tuning.best_params(TITANIC, "lgbm")
    assert source["trial"] > 0, "this test needs a trial better than the recipe's own params"
    tuned, _ = runner.train(TITANIC, "lgbm", params=params, params_source=source, progress=False)
    plain, _ = runner.train(TITANIC, "logreg", progress=False)
    assert tuned is not None and tuned.tuned and plain is not None and not plain.tuned
    result = run_script("ensemble.py", "titanic", env=env_for(kit_home, data_dir=data_dir))
    assert result.returncode == 0, result.stderr
    record = next(r for r in load_runs("titanic") if r.ensemble)
    weighted = record.ensemble["weights"].get(tuned.run_id, 0) > 0
    lines = [line for line in result.stdout.splitlines()  # the member lines: weight, recipe, run id, CV
             if re.match(r"\s+\d\.\d{3}\s", line) and tuned.run_id in line]
    assert all("params tuned on these folds" in line for line in lines) and bool(lines) == weighted
    assert ("note: members whose params were tuned" in result.stdout) == weighted
    assert not any("tuned" in line for line in result.stdout.splitlines() if plain.run_id in line)
    table = run_script("leaderboard.py", "titanic", env=env_for(kit_home, data_dir=data_dir)).stdout.splitlines()
    rows = [line for line in table if line.split()[:1] and line.split()[0].isdigit()]  # rank, CV, recipe, run id
    assert [line.endswith("(tuned on its folds: optimistic)") for line in rows if tuned.run_id in line] == [True]
    assert not any("tuned" in line for line in table if plain.run_id in line)
