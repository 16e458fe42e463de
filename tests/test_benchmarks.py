"""The benchmark scripts behind BENCHMARKS.md, run small: a script no test runs rots until the day its figures are
needed. Full-size runs stay in BENCHMARKS.md."""

import re

import optuna
import pandas as pd

from conftest import run_script


def test_bench_storage_times_the_storages_the_toolkit_opens(postgres_url):
    done = run_script("bench_storage.py", "--trials", "5", "--postgres", postgres_url, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = re.findall(r"^(.+?)\s+(\d+) trials/min\s+([\d.]+)x", done.stdout, re.M)
    assert [name.strip() for name, _, _ in rows] == ["in-memory", "journal file (default)", "sqlite", "postgresql"]
    assert all(int(rate) > 0 for _, rate, _ in rows)
    assert rows[0][2] == "1.00"
    # the trials went into the database it was given, through the toolkit's own storage
    (summary,) = optuna.get_all_study_summaries(optuna.storages.RDBStorage(postgres_url), include_best_trial=False)
    assert summary.n_trials == 5


def test_bench_storage_with_an_unreachable_database_is_one_line_before_any_timing():
    done = run_script("bench_storage.py", "--trials", "5", "--postgres", "postgresql://nobody@127.0.0.1:1/none")
    assert done.returncode != 0
    assert done.stdout == ""
    assert done.stderr.strip().count("\n") == 0
    assert done.stderr.startswith("error: cannot reach tuning storage postgresql://nobody@127.0.0.1:1/none")


def test_bench_web_traffic_builds_a_stage_two_mirror_and_runs_a_recipe_on_it(shared_kaggle, tmp_path, kit_home):
    out = tmp_path / "mirror"
    done = run_script("bench_web_traffic.py", "--out", str(out), "--shared", str(shared_kaggle), "--pages", "300",
                      "--recipe", "fast", "--folds", "3")
    assert done.returncode == 0, done.stderr
    assert "built in" in done.stderr
    assert re.search(r"web-traffic-stage2 fast: exit 0, wall [\d.]+ min, peak RSS [\d.]+ GB \(300 pages x 803 days\)",
                     done.stdout)
    folder = out / "web-traffic-time-series-forecasting"
    train = pd.read_csv(folder / "train_2.csv")
    assert train.shape == (300, 804)
    assert train["Page"].is_unique
    days = pd.to_datetime(train.columns[1:])
    assert days[0] == pd.Timestamp("2015-07-01") and (days.to_series().diff().dropna() == pd.Timedelta(days=1)).all()
    values = train.iloc[:, 1:]
    assert 0 < values.isna().to_numpy().mean() < 0.2 and (values.fillna(0) >= 0).all().all()
    key = pd.read_csv(folder / "key_2.csv")
    assert len(key) == 300 * 62 and key["Id"].is_unique
    forecast_days = pd.to_datetime(key["Page"].str[-10:]).unique()
    assert forecast_days.min() == days[-1] + pd.Timedelta(days=3)  # stage 2: two days skipped after train ends
    submission = pd.read_csv(kit_home / "submissions" / "web-traffic-stage2.csv")
    assert set(submission["Id"]) == set(key["Id"]) and (submission["Visits"] >= 0).all()
    # a second call reuses the mirror instead of building it again; one of another size is refused, not mislabelled
    again = run_script("bench_web_traffic.py", "--out", str(out), "--shared", str(shared_kaggle), "--build-only")
    assert again.returncode == 0, again.stderr
    assert "built in" not in again.stderr and "using the mirror built before" in again.stderr
    other = run_script("bench_web_traffic.py", "--out", str(out), "--shared", str(shared_kaggle), "--pages", "400")
    assert other.returncode == 2
    assert other.stderr.strip() == (f"error: {out} holds a mirror of 300 pages x 803 days (horizon 62), not the 400 "
                                    "pages asked for; give another --out, or remove that folder to build it again")
    assert len(pd.read_csv(folder / "train_2.csv")) == 300


def test_bench_web_traffic_builds_again_where_a_build_was_cut_short(shared_kaggle, tmp_path, kit_home):
    out = tmp_path / "mirror"
    folder = out / "web-traffic-time-series-forecasting"
    folder.mkdir(parents=True)
    (folder / "train_2.csv").write_text("Page,2015-07-01\nA_en.wikipedia.org_all-access_all-agents,1")  # cut short
    done = run_script("bench_web_traffic.py", "--out", str(out), "--shared", str(shared_kaggle), "--pages", "20",
                      "--days", "500", "--build-only")
    assert done.returncode == 0, done.stderr
    assert "built in" in done.stderr
    assert pd.read_csv(folder / "train_2.csv").shape == (20, 501)
