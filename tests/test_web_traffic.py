"""Web Traffic: the real replica's files (plain and as Kaggle nests them), backtests read off the key file,
forecasters, key-file submissions, stage 2's gap, and the bad inputs of issue 13."""

import warnings
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import competitions
from common import data, runner, tuning
from common.blocks.series import nan_median, nan_quantile
from common.errors import DataError, UsageError
from common.importance import gain
from common.metrics import smape_score
from common.splitters import ForecastTask, Panel
from competitions.web_traffic import global_lgbm
from competitions.web_traffic.baselines import MedianForecaster, median_of_medians
from competitions.web_traffic.blend import Blend
from competitions.web_traffic.figures import example_pages
from competitions.web_traffic.global_lgbm import GlobalLGBM
from competitions.web_traffic.recipes import WINDOW_SETS

from conftest import kaggle_env, run_script
from test_bad_input import env_with, one_error_line, snapshot

WT = competitions.get("web-traffic")
WT2 = competitions.get("web-traffic-stage2")
SLUG = "web-traffic-time-series-forecasting"
STAGE1 = ("train_1.csv", "key_1.csv", "sample_submission_1.csv")


@pytest.fixture(scope="module")
def replica(shared_kaggle, tmp_path_factory) -> Path:
    """The real replica's three csv files, unpacked once."""
    folder = tmp_path_factory.mktemp("replica")
    with zipfile.ZipFile(shared_kaggle / SLUG / f"{SLUG}.zip") as zf:
        zf.extractall(folder)
    return folder


def small_copy(replica: Path, target: Path, pages: int = 120, stage: int = 1, **changes) -> Path:
    """The first ``pages`` real pages with their key and sample rows, as ``<target>/<slug>/`` files."""
    folder = target / SLUG
    folder.mkdir(parents=True)
    train = pd.read_csv(replica / "train_1.csv", nrows=pages)
    key = pd.read_csv(replica / "key_1.csv")
    key = key[key["Page"].str[:-11].isin(set(train["Page"]))]
    sample = pd.DataFrame({"Id": key["Id"], "Visits": 0})
    train, key, sample = (changes.get(name, lambda f: f)(f) for name, f in
                          (("train", train), ("key", key), ("sample", sample)))
    train.to_csv(folder / f"train_{stage}.csv", index=False)
    key.to_csv(folder / f"key_{stage}.csv", index=False)
    sample.to_csv(folder / f"sample_submission_{stage}.csv", index=False)
    return target


# -- the metric ---------------------------------------------------------------------------------------------------
def test_smape_follows_kaggles_rules():
    assert smape_score(np.array([0.0, 0.0]), np.array([0.0, 0.0])) == 0  # both 0: no error
    assert smape_score(np.array([1.0]), np.array([0.0])) == pytest.approx(200)  # percent, at most 200
    assert smape_score(np.array([100.0]), np.array([50.0])) == pytest.approx(200 * 50 / 150)
    assert smape_score(np.array([100.0]), np.array([50.0])) == smape_score(np.array([50.0]), np.array([100.0]))
    # missing actuals are skipped, not counted as 0
    assert smape_score(np.array([np.nan, 10.0]), np.array([3.0, 10.0])) == 0
    assert smape_score(np.array([0.0, 4.0, np.nan]), np.array([0.0, 2.0, 9.0])) == pytest.approx((0 + 200 / 3) / 2)


# -- the real replica ---------------------------------------------------------------------------------------------
def test_fast_recipe_on_the_real_replica_writes_a_valid_key_file_submission(data_dir, kit_home, replica):
    record, folder = runner.train(WT, "fast", progress=False)  # the competition's default: 3 windows
    folds = record.folds
    assert folds["kind"] == "backtest" and folds["horizon"] == 60 and folds["gap"] == 0  # read off key_1.csv
    assert [w["last_day"] for w in folds["windows"]][-1] == "2016-11-01"  # the newest ends on the last train day
    assert len(folds["windows"]) == 3 and all(0 < s < 200 for s in record.cv["fold_scores"])
    # the oldest window still has 310 days of history (2015-07-01 ..), so its models train as the final fit does
    assert folds["windows"][0]["last_history_day"] == "2016-05-05" and folds["n_splits"] == 3

    sub = pd.read_csv(folder / "submission.csv")
    sample = pd.read_csv(replica / "sample_submission_1.csv")
    assert list(sub.columns) == ["Id", "Visits"] and sub["Id"].equals(sample["Id"])
    assert (sub["Visits"] >= 0).all() and (sub["Visits"] == sub["Visits"].round()).all()  # rounded counts
    test_pred = pd.read_parquet(folder / "test_pred.parquet")
    assert test_pred.columns[1] == "2016-11-02" and test_pred.columns[-1] == "2016-12-31"
    # a key row carries its page's forecast for its day
    key = pd.read_csv(replica / "key_1.csv", nrows=5000)
    row = key.iloc[4321]
    page, day = row["Page"][:-11], row["Page"][-10:]
    expected = round(float(test_pred.loc[test_pred["Page"] == page, day].iloc[0]))
    assert sub.set_index("Id").loc[row["Id"], "Visits"] == expected
    assert (Path(kit_home) / "submissions" / "web-traffic.csv").is_file()


def test_compare_pairs_forecasters_with_the_gain_in_smapes_direction(data_dir, kit_home):
    """SMAPE is an error: a recipe with a higher SMAPE than the baseline has a negative gain."""
    result = run_script("compare.py", "web-traffic", "--recipes", "weekday", "--baseline", "median",
                        "--repeats", "2")
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    means = {name: float(line.split()[1]) for name, line in lines.items()}
    gain = float(lines["weekday"].split("gain ")[1].split()[0])
    assert means["weekday"] > means["median"] and gain == pytest.approx(means["median"] - means["weekday"], abs=2e-5)


def test_a_backtest_needs_three_windows(data_dir, kit_home):
    with pytest.raises(UsageError, match="at least 3 windows"):
        runner.train(WT, "median", n_folds=2, progress=False)


def test_too_many_windows_for_the_history_are_one_usage_line_naming_the_limit(data_dir, kit_home):
    with pytest.raises(UsageError, match=r"cannot place 9 backtest windows .* choose --folds between 3 and 7"):
        runner.train(WT, "median", n_folds=9, progress=False)
    # 7 windows fit the splitter, but the oldest leaves the LightGBM no training cut-off: a usage line, no traceback
    result = run_script("train.py", "web-traffic", "--recipe", "fast", "--folds", "7", "--quiet")
    assert "too few for the LightGBM forecaster" in one_error_line(result, 2) and "fewer --folds" in result.stderr
    assert not (kit_home / "runs").exists() or not list((kit_home / "runs").rglob("run.json"))


def test_nested_zips_as_kaggle_ships_them_load_like_the_plain_files(replica, tmp_path, kit_home):
    plain = small_copy(replica, tmp_path / "plain")
    nested = tmp_path / "nested"
    nested.mkdir()
    with zipfile.ZipFile(nested / f"{SLUG}.zip", "w") as outer:  # both stages, as Kaggle's zip has them
        for name in STAGE1:
            for stage_name in (name, name.replace("_1", "_2")):
                inner = tmp_path / f"{stage_name}.zip"
                with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as zf:
                    zf.write(plain / SLUG / name, stage_name)
                outer.write(inner, f"{stage_name}.zip")
    _, from_zip = data.load(WT, nested)
    _, from_csv = data.load(WT, plain)
    assert np.array_equal(from_zip.labels, from_csv.labels, equal_nan=True)
    assert from_zip.test.equals(from_csv.test) and len(from_zip.train) == 120
    # the cache holds this stage's files only, not the other stage's zips
    assert sorted(p.name for p in (kit_home / "data" / WT.cache).iterdir()) == sorted([*STAGE1, "MANIFEST.json"])


def test_scoring_some_windows_scores_the_newest(replica, tmp_path, kit_home):
    """--folds-scored n on a backtest: the n windows with the most history, not the oldest; ensembles follow."""
    from common import ensemble_runs

    mirror = small_copy(replica, tmp_path / "mirror", pages=60)
    every, _ = runner.train(WT, "median", data_dir=mirror, progress=False)
    newest, _ = runner.train(WT, "median", data_dir=mirror, progress=False, folds_scored=2)
    assert newest.cv["fold_scores"] == pytest.approx(every.cv["fold_scores"][1:])
    oof = pd.read_parquet(newest.path / "oof.parquet")
    oldest, middle = every.folds["windows"][:2]
    assert oldest["first_day"] not in oof.columns and middle["first_day"] in oof.columns
    runner.train(WT, "weekday", data_dir=mirror, progress=False, folds_scored=2)
    record, _, _ = ensemble_runs.build(WT, [newest.run_id, *(r.run_id for r in _runs("weekday"))], data_dir=mirror)
    assert len(record.cv["fold_scores"]) == 2


def test_the_backtest_is_scored_over_its_cells_as_one_block_where_the_windows_touch():
    """The run's out-of-fold score: windows end to end are scored as one series x days block of views (at full
    size picking the cells out cost 0.5 GB), windows apart or rows left out cell by cell - the same score."""
    rng = np.random.default_rng(0)
    y = rng.poisson(4, (30, 40)).astype(np.float32)
    y[rng.random(y.shape) < 0.1] = np.nan
    shapes: list[int] = []

    def score(truth, forecast):
        shapes.append(truth.ndim)
        return WT.score(truth, forecast)

    cases = [([range(10, 30)], slice(None), True),  # (windows, the rows they forecast, scored as one block)
             ([range(10, 20), range(25, 30)], slice(None), False),
             ([range(10, 30)], slice(3, None), False)]
    for days, rows, block in cases:
        oof = np.full(y.shape, np.nan, dtype=np.float32)
        for window in days:
            oof[rows, window.start:window.stop] = rng.poisson(4, (len(y), len(window)))[rows]
        prep = SimpleNamespace(folds=SimpleNamespace(fold=None), data=SimpleNamespace(y=y))
        scored = ~np.isnan(oof)
        got = runner.oof_score(SimpleNamespace(score=score), prep, SimpleNamespace(oof=oof))
        assert got == pytest.approx(WT.score(y[scored], oof[scored]), rel=1e-13)
        assert shapes.pop(0) == (2 if block else 1)


def _runs(recipe: str) -> list:
    from common.runs import load_runs

    return [r for r in load_runs("web-traffic") if r.recipe == recipe]


def test_a_forecaster_is_tuned_on_the_backtest_and_its_best_trial_trains(replica, tmp_path, kit_home):
    mirror = small_copy(replica, tmp_path / "mirror", pages=60)
    study = tuning.tune(WT, "weekday", n_trials=5, data_dir=str(mirror))
    assert len(study.trials) == 5 and {"windows", "weekday", "weeks"} <= set(study.best_trial.params)
    params, source = tuning.best_params(WT, "weekday")
    assert tuple(params["windows"]) in WINDOW_SETS.values()
    record, _ = runner.train(WT, "weekday", params=params, params_source=source, data_dir=mirror, progress=False)
    assert record.cv["mean"] == pytest.approx(study.best_value)  # same backtest windows, same forecast


def test_both_stages_of_one_download_keep_a_cache_each(replica, tmp_path, kit_home):
    """One Kaggle zip holds both stages; one shared cache would swap them out in turn (a download each time)."""
    _both_stages_zipped(replica, tmp_path, tmp_path / "mirror" / f"{SLUG}.zip")
    one, two = data.fetch(WT, tmp_path / "mirror"), data.fetch(WT2, tmp_path / "mirror")
    assert one.folder != two.folder and (two.folder / "train_2.csv").is_file()
    written = (one.folder / "train_1.csv").stat().st_mtime_ns
    assert data.fetch(WT, tmp_path / "mirror").folder == one.folder  # stage 1 again: its cache, not unpacked again
    assert (one.folder / "train_1.csv").stat().st_mtime_ns == written


def _both_stages_zipped(replica: Path, tmp_path: Path, target: Path) -> None:
    """Kaggle's zip: each stage's files zipped one by one inside it."""
    small_copy(replica, tmp_path / "files", pages=30)
    small_copy(replica, tmp_path / "files2", pages=30, stage=2)
    target.parent.mkdir(parents=True)
    with zipfile.ZipFile(target, "w") as outer:
        for folder in ("files", "files2"):
            for csv in sorted((tmp_path / folder / SLUG).iterdir()):
                inner = tmp_path / f"{csv.name}.zip"
                with zipfile.ZipFile(inner, "w") as zf:
                    zf.write(csv, csv.name)
                outer.write(inner, inner.name)


def test_the_second_stage_unpacks_the_download_the_first_kept(replica, tmp_path, kit_home, fake_kaggle):
    """Both stages come in one Kaggle zip: the first stage run keeps it until the other has its cache, so running
    both downloads it once."""
    _both_stages_zipped(replica, tmp_path, tmp_path / "kaggle" / SLUG / f"{SLUG}.zip")
    fake_kaggle.state.root = tmp_path / "kaggle"
    env = kaggle_env(kit_home, fake_kaggle)
    download = kit_home / "data" / f".download-{SLUG}"
    first = run_script("download.py", "web-traffic-stage2", env=env)
    assert first.returncode == 0, first.stderr
    assert "kept the download" in first.stderr and "for web-traffic, which" in first.stderr
    assert (download / f"{SLUG}.zip").is_file()
    said = run_script("prune.py", "web-traffic", env=env).stdout  # where a user frees space, it is named
    assert f".download-{SLUG}/ holds " in said and "the whole download, kept until web-traffic unpacks it" in said
    second = run_script("download.py", "web-traffic", env=env)
    assert second.returncode == 0, second.stderr
    assert "using the download kept in" in second.stderr
    assert "Skipping, found more recently modified local copy" in second.stdout  # the client sent for no bytes
    assert (kit_home / "data" / SLUG / "train_1.csv").is_file()
    assert (kit_home / "data" / "web-traffic-stage2" / "train_2.csv").is_file()
    assert not download.exists()  # gone once both stages have their files


def _zip_each(plain: Path, folder: Path) -> None:
    folder.mkdir(parents=True)
    for name in STAGE1:
        with zipfile.ZipFile(folder / f"{name}.zip", "w", zipfile.ZIP_DEFLATED) as zf:
            zf.write(plain / SLUG / name, name)


@pytest.mark.parametrize("where", ["notebook", "data-dir"])
def test_a_folder_of_zipped_files_loads_like_the_plain_files(replica, tmp_path, kit_home, monkeypatch, where):
    """A Kaggle notebook mounts Web Traffic as train_1.csv.zip, key_1.csv.zip, ...; unzipping the download once
    gives the same folder."""
    plain = small_copy(replica, tmp_path / "plain")
    if where == "notebook":
        monkeypatch.setattr(data, "KAGGLE_INPUT", tmp_path / "input")
        folder, data_dir = tmp_path / "input" / "competitions" / SLUG, None
    else:
        folder, data_dir = tmp_path / "mirror" / SLUG, tmp_path / "mirror"
    _zip_each(plain, folder)
    files, from_zips = data.load(WT, data_dir)
    _, from_csv = data.load(WT, plain)
    assert files.source == ("kaggle-input" if where == "notebook" else "data-dir")
    assert files.folder == kit_home / "data" / SLUG and not list(files.folder.glob("*.zip"))
    assert np.array_equal(from_zips.labels, from_csv.labels, equal_nan=True) and from_zips.test.equals(from_csv.test)
    # the same zips again: the cache is used as it is; a zip that changes is unpacked again
    written = (files.folder / "train_1.csv").stat().st_mtime_ns
    assert (data.fetch(WT, data_dir).folder / "train_1.csv").stat().st_mtime_ns == written
    small_copy(replica, tmp_path / "bad", train=_negative)
    (folder / "train_1.csv.zip").unlink()
    with zipfile.ZipFile(folder / "train_1.csv.zip", "w") as zf:
        zf.write(tmp_path / "bad" / SLUG / "train_1.csv", "train_1.csv")
    with pytest.raises(DataError, match="counts >= 0"):  # checked before it may replace the cache
        data.load(WT, data_dir)
    assert (files.folder / "train_1.csv").stat().st_mtime_ns == written


def test_stage_two_forecasts_after_the_key_files_gap(tmp_path, kit_home):
    """Stage 2 style: train ends, one day is skipped, then the key's days; windows keep the same gap."""
    rng = np.random.default_rng(0)
    days = pd.date_range("2016-01-01", periods=200)
    pages = [f"Page_{i}_de.wikipedia.org_all-access_spider" for i in range(8)]
    weekly = 1 + 0.5 * (days.day_of_week >= 5)
    values = rng.poisson(rng.uniform(5, 80, (8, 1)) * weekly).astype(float)
    train = pd.DataFrame(values, columns=[d.date().isoformat() for d in days])
    train.insert(0, "Page", pages)
    future = pd.date_range(days[-1] + pd.Timedelta(days=2), periods=14)
    key = pd.DataFrame({"Page": [f"{p}_{d.date()}" for p in pages for d in future],
                        "Id": [f"k{i:05d}" for i in range(8 * 14)]})
    folder = tmp_path / "mirror" / SLUG
    folder.mkdir(parents=True)
    train.to_csv(folder / "train_2.csv", index=False)
    key.to_csv(folder / "key_2.csv", index=False)
    key[["Id"]].assign(Visits=0).to_csv(folder / "sample_submission_2.csv", index=False)

    record, run = runner.train(WT2, "weekday", n_folds=3, data_dir=tmp_path / "mirror", progress=False)
    assert record.folds["gap"] == 1 and record.folds["horizon"] == 14
    for w in record.folds["windows"]:
        assert (pd.Timestamp(w["first_day"]) - pd.Timestamp(w["last_history_day"])).days == 2
    test_pred = pd.read_parquet(run / "test_pred.parquet")
    assert test_pred.columns[1] == future[0].date().isoformat()
    sub = pd.read_csv(run / "submission.csv")
    assert len(sub) == 8 * 14 and (sub["Visits"] >= 0).all()
    weekend = pd.DatetimeIndex(pd.to_datetime(test_pred.columns[1:])).day_of_week >= 5
    # the weekday recipe carries the weekend lift into the forecast
    assert (test_pred.iloc[:, 1:].to_numpy()[:, weekend].mean() > test_pred.iloc[:, 1:].to_numpy()[:, ~weekend].mean())


# -- forecasters --------------------------------------------------------------------------------------------------
def synthetic_panel(n: int = 300, days: int = 400, seed: int = 0) -> tuple[Panel, np.ndarray]:
    """Pages whose level drifts (a trend the medians lag behind) with weekly seasonality and Poisson noise."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2015-07-01", periods=days)
    level = rng.uniform(1, 6, (n, 1)) + rng.normal(0, 0.004, (n, 1)) * np.arange(days)
    weekly = 0.4 * (dates.day_of_week.to_numpy() >= 5)
    values = rng.poisson(np.expm1(np.clip(level + weekly, 0, 12))).astype(np.float32)
    static = pd.DataFrame({c: pd.Categorical(rng.choice(["a", "b"], n)) for c in ("project", "access", "agent")})
    return Panel(np.array([f"p{i}" for i in range(n)]), dates, values, static), values


def backtest_score(model, panel: Panel, values: np.ndarray, horizon: int = 28) -> float:
    history = panel.until(len(panel.dates) - horizon)
    task = ForecastTask(history, panel.dates[-horizon:])
    model.fit(task, values[:, :-horizon])
    forecast = model.predict(task)
    assert forecast.shape == (len(panel), horizon) and (forecast >= 0).all()
    return smape_score(values[:, -horizon:].ravel(), forecast.ravel())


def test_median_of_medians_reads_each_window():
    logged = np.log1p(np.array([[1, 1, 1, 1, 50, 50, 50]], dtype=np.float32))
    # windows of the last 3, 5 and 7 days: medians 50, 50, 1 -> 50
    assert np.expm1(median_of_medians(logged, (3, 5, 7)))[0] == pytest.approx(50)


@pytest.mark.parametrize("days", [2, 3, 28, 56, 329, 600])
def test_row_medians_and_quantiles_match_numpys_to_the_bit_on_the_real_pages(replica, days):
    """The fast nan_median / nan_quantile replace numpy's in every feature: not one value may move."""
    visits = pd.read_csv(replica / "train_1.csv", nrows=1500).drop(columns="Page").to_numpy(np.float32)
    logged = np.log1p(np.tile(visits, (1, 2)))[:, -days:]  # the real pages' missing days, plus more below
    rng = np.random.default_rng(days)
    logged[rng.random(logged.shape) < 0.05] = np.nan
    logged[:40] = np.nan  # pages with no history at all
    logged[40:80, 1:] = np.nan  # one known day
    logged[80], logged[80, :2] = np.nan, (6.901737, 1.9459101)  # a pair whose mean and 0.5-quantile differ
    for values in (logged, logged.astype(np.float64)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            expected = [np.nanmedian(values, axis=1), np.nanquantile(values, 0.25, axis=1),
                        np.nanquantile(values, 0.75, axis=1)]
        for got, want in zip([nan_median(values), nan_quantile(values, 0.25), nan_quantile(values, 0.75)],
                             expected, strict=True):
            assert got.dtype == values.dtype
            np.testing.assert_array_equal(got, want)
    missing = np.isnan(nan_median(logged))
    assert missing[:40].all() and np.array_equal(missing, np.isnan(logged).all(axis=1))


def test_global_lgbm_and_weekday_beat_the_flat_median_on_trending_weekly_pages():
    panel, values = synthetic_panel()
    flat = backtest_score(MedianForecaster(), panel, values)
    weekday = backtest_score(MedianForecaster(weekday=1.0), panel, values)
    model = GlobalLGBM(n_estimators=120, max_cuts=8, stride=7)
    lgbm = backtest_score(model, panel, values)
    assert weekday < flat and lgbm < weekday, (flat, weekday, lgbm)
    # what it relied on, by feature name, for the run record (also when it is a blend's member)
    relied = gain(model)
    assert len(relied) > 5 and not any(name.startswith("Column_") for name in relied)
    assert gain(Blend({"lgbm": model, "median": MedianForecaster()}, {"lgbm": 0.7, "median": 0.3})) is None
    assert gain(Blend({"lgbm": model}, {"lgbm": 1.0}).fit(ForecastTask(panel.until(300), panel.dates[300:328]))) \
        is not None


def test_global_lgbm_forecasts_each_page_alike_whatever_pages_it_is_predicted_with(monkeypatch):
    """At full size the forecast is built a block of pages at a time (1 GB of features otherwise): blocks that end
    mid-panel give every page the forecast it gets in one block."""
    panel, _ = synthetic_panel(n=50, days=300)
    task = ForecastTask(panel.until(272), panel.dates[-28:])
    model = GlobalLGBM(n_estimators=30, max_cuts=4, stride=7).fit(task)
    whole = model.predict(task)
    monkeypatch.setattr(global_lgbm, "PREDICT_PAGES", 7)
    assert np.array_equal(model.predict(task), whole)


def test_rnn_trains_on_the_torch_estimator_and_beats_the_flat_median():
    from competitions.web_traffic.rnn import Seq2SeqForecaster

    panel, values = synthetic_panel(n=200)
    flat = backtest_score(MedianForecaster(), panel, values)
    rnn = backtest_score(Seq2SeqForecaster(epochs=6, hidden=32, encoder_days=56, samples_per_series=8,
                                           progress=False), panel, values)
    assert rnn < flat, (flat, rnn)


def test_blend_rounds_to_whole_visits_and_refuses_unknown_members():
    panel, values = synthetic_panel(n=20, days=120)
    task = ForecastTask(panel.until(100), panel.dates[100:])
    blend = Blend({"median": MedianForecaster(), "weekday": MedianForecaster(weekday=1.0)},
                  {"median": 0.5, "weekday": 0.5}).fit(task)
    forecast = blend.predict(task)
    assert (forecast == np.round(forecast)).all()
    with pytest.raises(ValueError, match="unknown members"):
        Blend({"median": MedianForecaster()}, {"lgbm": 1.0}).fit(task)


# -- bad input ----------------------------------------------------------------------------------------------------
def _drop_day(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=frame.columns[10])


def _swap_days(frame: pd.DataFrame) -> pd.DataFrame:
    cols = list(frame.columns)
    cols[10], cols[11] = cols[11], cols[10]
    return frame[cols]


def _repeat_day(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.rename(columns={frame.columns[11]: frame.columns[10]})


def _text_visits(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.astype({frame.columns[20]: object})
    frame.iloc[5, 20] = "lots"
    return frame


def _negative(frame: pd.DataFrame) -> pd.DataFrame:
    frame.iloc[7, 30] = -4
    return frame


def _infinite(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.astype({frame.columns[40]: float})
    frame.iloc[4, 40] = np.inf  # written as "inf", which reads as a number
    return frame


def _key_day_missing(key: pd.DataFrame) -> pd.DataFrame:
    return key[~key["Page"].str.endswith("2016-11-15")]


def _key_from_an_earlier_stage(key: pd.DataFrame) -> pd.DataFrame:
    days = pd.to_datetime(key["Page"].str[-10:]) - pd.Timedelta(days=60)
    return key.assign(Page=key["Page"].str[:-10] + days.dt.strftime("%Y-%m-%d"))


def _key_no_such_day(key: pd.DataFrame) -> pd.DataFrame:
    key = key.copy()
    key.at[key.index[3], "Page"] = key["Page"].iloc[3][:-10] + "2016-11-31"
    return key


def _blank(column: str, row: int):
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        frame.at[frame.index[row], column] = None
        return frame
    return change


@pytest.mark.parametrize("changes, message", [
    ({"key": _key_day_missing}, "the forecast days are not consecutive"),
    ({"key": _blank("Page", 6)}, "key_1.csv: Page must be text on every row (no gaps); row 7"),
    ({"train": _blank("Page", 2)}, "train_1.csv: Page must be text on every row (no gaps); row 3"),
    ({"key": _key_from_an_earlier_stage}, "which is not after the last train day 2016-11-01"),
    ({"key": lambda k: k.drop(index=k.index[5])}, "has 59 key rows, not one per forecast day (60)"),
    ({"key": _key_no_such_day}, "with a real day; row 4"),
    ({"train": _swap_days}, "comes before the column before it"),
    ({"train": _repeat_day}, "repeated day"),
    ({"train": _drop_day}, "skips 1 day"),
    ({"train": _text_visits}, "a number of visits or empty"),
    ({"train": _negative}, "counts >= 0"),
    ({"train": _infinite}, "visits must be finite counts; page"),
    ({"train": lambda f: f.iloc[:0]}, "train_1.csv has 0 rows"),
    ({"key": lambda k: k[~k["Page"].str.startswith(k["Page"].iloc[0][:-11])]}, "asks for no forecast of 1 train"),
    ({"train": lambda f: f[["Page"]]}, "train_1.csv has no day columns after Page"),
    ({"train": lambda f: f.rename(columns={f.columns[10]: "yesterday"})},
     "train_1.csv: column 'yesterday' is not a YYYY-MM-DD day; the day columns must be the competition's"),
    ({"train": lambda f: f.rename(columns={"Page": "url"})}, "train_1.csv is missing column(s) Page"),
], ids=["key-day-missing", "key-page-empty", "train-page-empty", "key-of-another-stage", "key-page-short-of-a-day",
        "key-no-such-day", "days-out-of-order", "day-repeated", "day-missing", "text-visits", "negative",
        "infinite", "empty-train", "page-missing-from-key", "no-days", "day-not-a-date", "no-page-column"])
def test_bad_files_give_one_line_and_write_nothing(replica, tmp_path, kit_home, changes, message):
    mirror = small_copy(replica, tmp_path / "mirror", pages=30, **changes)
    result = run_script("train.py", "web-traffic", "--recipe", "median", "--quiet",
                        env=env_with(KIT_HOME=str(kit_home), KAGGLE_DATA_DIR=str(mirror)))
    line = one_error_line(result, 3)
    assert message in line, line
    assert snapshot(kit_home / "runs") == {} and snapshot(kit_home / "submissions") == {}


def test_key_pages_without_history_are_forecast_as_zero_with_a_warning(replica, tmp_path, kit_home):
    stranger = "Nobody_es.wikipedia.org_all-access_spider"

    def add_stranger(key: pd.DataFrame) -> pd.DataFrame:
        days = pd.date_range("2016-11-02", periods=60)
        extra = pd.DataFrame({"Page": [f"{stranger}_{d.date()}" for d in days],
                              "Id": [f"zz{i:010d}" for i in range(60)]})
        return pd.concat([key, extra], ignore_index=True)

    mirror = small_copy(replica, tmp_path / "mirror", pages=30, key=add_stranger,
                        sample=lambda s: pd.concat([s, pd.DataFrame({"Id": [f"zz{i:010d}" for i in range(60)],
                                                                     "Visits": 0})], ignore_index=True))
    result = run_script("train.py", "web-traffic", "--recipe", "median", "--quiet",
                        env=env_with(KIT_HOME=str(kit_home), KAGGLE_DATA_DIR=str(mirror)))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "60 key rows (1 page(s)" in result.stderr and "forecast as 0" in result.stderr
    sub = pd.read_csv(kit_home / "submissions" / "web-traffic.csv")
    assert (sub.loc[sub["Id"].str.startswith("zz"), "Visits"] == 0).all() and len(sub) == 30 * 60 + 60


def test_fractional_visits_and_odd_page_names_are_used_with_a_warning(replica, tmp_path, kit_home):
    def odd(train: pd.DataFrame) -> pd.DataFrame:
        train = train.astype({train.columns[40]: float})
        train.iloc[2, 40] = 3.5
        train.iloc[4, 0] = "Just a title"  # not <article>_<project>_<access>_<agent>
        return train

    def renamed(key: pd.DataFrame) -> pd.DataFrame:
        page = pd.read_csv(replica / "train_1.csv", nrows=5)["Page"].iloc[4]
        return key.assign(Page=key["Page"].str.replace(page, "Just a title", regex=False))

    mirror = small_copy(replica, tmp_path / "mirror", pages=30, train=odd, key=renamed)
    result = run_script("train.py", "web-traffic", "--recipe", "median", "--quiet",
                        env=env_with(KIT_HOME=str(kit_home), KAGGLE_DATA_DIR=str(mirror)))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "1 visit counts are not whole numbers" in result.stderr
    assert "1 page names are not <article>_<project>_<access>_<agent>" in result.stderr


def test_sample_ids_must_match_the_key(replica, tmp_path, kit_home):
    mirror = small_copy(replica, tmp_path / "mirror", pages=30, sample=lambda s: s.iloc[:-1])
    with pytest.raises(DataError, match="list different Ids"):
        data.load(WT, mirror)


def _silent_page(frame: pd.DataFrame) -> pd.DataFrame:
    frame.iloc[3, 1:] = np.nan  # a page with no visits recorded at all
    return frame


def test_the_report_pictures_pages_of_other_wikis_across_the_traffic_levels(replica):
    """The replica's pages are mostly es.wikipedia spider ones: the pictures still show four kinds of page, in order
    of level, each near its level's quantile; a panel of one kind gets the quantiles themselves."""
    pages = pd.read_csv(replica / "train_1.csv", usecols=["Page"])["Page"]
    level = np.random.default_rng(0).random(len(pages))
    chosen = example_pages(level, pages, 4)
    kinds = pages.iloc[chosen].str.extract(r"_([^_]+\.org_[^_]+)_[^_]+$")[0]
    assert kinds.nunique() == 4 and kinds.str.contains("es.wikipedia").sum() <= 1
    rank = np.argsort(np.argsort(level))[chosen]
    assert (np.diff(rank) > 0).all() and rank[0] >= len(pages) // 4 - 50 and rank[-1] >= len(pages) - 50
    one_kind = pd.Series([f"P{i}_es.wikipedia.org_all-access_spider" for i in range(9)])
    assert example_pages(np.arange(9.0)[::-1], one_kind, 4).tolist() == [6, 4, 2, 0]  # levels 2, 4, 6, 8
    assert example_pages(np.zeros(2), one_kind[:2], 4).tolist() == [0, 1]


def test_report_shows_the_backtest_pictures(replica, tmp_path, kit_home):
    mirror = small_copy(replica, tmp_path / "mirror", pages=40, train=_silent_page)
    env = env_with(KIT_HOME=str(kit_home), KAGGLE_DATA_DIR=str(mirror))
    trained = run_script("train.py", "web-traffic", "--recipe", "median", "--folds", "3", "--quiet", env=env)
    assert trained.returncode == 0, trained.stderr[-2000:]
    result = run_script("leaderboard.py", "web-traffic", env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Warning" not in result.stderr  # no numpy warning about the silent page
    page = (kit_home / "reports" / "leaderboard.html").read_text()
    assert "Backtest SMAPE per forecast day and per project" in page
    assert "A few pages: history, backtest forecast and test forecast" in page
    assert page.count("data:image/png;base64,") == 3  # fold spread + the two pictures
    # the run's out-of-fold file gone: the pictures are skipped with a line that says so, the report is still written
    next((kit_home / "runs" / "web-traffic").glob("*/oof.parquet")).unlink()
    result = run_script("leaderboard.py", "web-traffic", env=env)
    assert result.returncode == 0 and "oof.parquet is missing" in result.stderr
    assert (kit_home / "reports" / "leaderboard.html").read_text().count("data:image/png;base64,") == 1
