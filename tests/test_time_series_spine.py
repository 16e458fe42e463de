"""A tiny synthetic forecasting competition, end to end through the same runner as the row competitions: wide
series x days train file, backtest windows read off the key file's horizon and gap, a forecast per series x day,
and a key-file submission (``<series>_<date>`` -> Id), as Web Traffic ships it."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, RegressorMixin

from common import runner
from common.competition import Competition, Data, DataFiles, FileSpec, Recipe, SubmissionSpec
from common.errors import DataError, SubmissionError
from common.metrics import SMAPE
from common.splitters import Backtest, ForecastTask, Panel
from common.submission import forecast_for_keys
from common.tables import read_table

SERIES, DAYS, HORIZON = 6, 120, 14


class LastWeeksMedian(RegressorMixin, BaseEstimator):
    """Forecasts each series flat at the median of its last ``days`` days; remembers what it was fitted on."""

    seen: list[int] = []

    def __init__(self, days: int = 14):
        self.days = days

    def fit(self, task: ForecastTask, y=None) -> "LastWeeksMedian":
        LastWeeksMedian.seen.append(len(task.history.dates))
        return self

    def predict(self, task: ForecastTask) -> np.ndarray:
        level = np.nanmedian(task.history.values[:, -self.days:], axis=1)
        return np.repeat(np.nan_to_num(level)[:, None], len(task.dates), axis=1)


def write_files(folder, gap: int) -> pd.DatetimeIndex:
    rng = np.random.default_rng(0)
    dates = pd.date_range("2016-01-01", periods=DAYS)
    level = rng.uniform(5, 50, size=(SERIES, 1))
    values = np.round(level * (1 + 0.3 * np.sin(np.arange(DAYS) / 7)) + rng.poisson(2, size=(SERIES, DAYS)))
    train = pd.DataFrame(values, columns=[d.date().isoformat() for d in dates])
    train.insert(0, "Page", [f"page_{i}" for i in range(SERIES)])
    folder.mkdir(parents=True)
    train.to_csv(folder / "train.csv", index=False)
    future = pd.date_range(dates[-1] + pd.Timedelta(days=gap + 1), periods=HORIZON)
    keys = [f"page_{i}_{d.date().isoformat()}" for i in range(SERIES) for d in future]
    key = pd.DataFrame({"Page": keys, "Id": [f"id{k:04d}" for k in range(len(keys))]})
    key.to_csv(folder / "key.csv", index=False)
    key[["Id"]].assign(Visits=0).to_csv(folder / "sample_submission.csv", index=False)
    return future


FILES = {"train.csv": FileSpec({"Page": "str"}, column_prefixes={"2016-": "numeric"}, unique=("Page",)),
         "key.csv": FileSpec({"Page": "str", "Id": "str"}, unique=("Id",)),
         "sample_submission.csv": FileSpec({"Id": "str", "Visits": "numeric"}, unique=("Id",))}


def load(files: DataFiles) -> Data:
    train = read_table(files, "train.csv", FILES["train.csv"])
    key = read_table(files, "key.csv", FILES["key.csv"])
    split = key["Page"].str.rsplit("_", n=1, expand=True)
    key = key.assign(series=split[0], date=pd.to_datetime(split[1]))
    values = train.drop(columns="Page").to_numpy(np.float32)
    return Data(train=train, test=key, sample_submission=read_table(files, "sample_submission.csv",
                                                                    FILES["sample_submission.csv"]),
                target="Visits", id_col="Page", labels=values)


def dates_of(data: Data) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(data.train.columns[1:]))


def features(data: Data):
    panel = Panel(data.train["Page"].to_numpy(), dates_of(data), data.y)
    future = pd.DatetimeIndex(sorted(data.test["date"].unique()))
    return panel, ForecastTask(panel, future)


def horizon(data: Data) -> int:
    return data.test["date"].nunique()


def gap(data: Data) -> int:
    return int((data.test["date"].min() - dates_of(data)[-1]).days) - 1


def to_submission(data: Data, forecast: np.ndarray) -> pd.DataFrame:
    panel, task = features(data)
    values = forecast_for_keys(forecast, panel.series, task.dates, data.test["series"], data.test["date"])
    by_id = pd.Series(values, index=data.test["Id"].to_numpy())
    sample = data.sample_submission
    return pd.DataFrame({"Id": sample["Id"], "Visits": by_id.reindex(sample["Id"]).to_numpy()})


TOY = Competition(
    name="toy-traffic", slug="toy-traffic", task="forecast", metric=SMAPE, files=FILES, load=load,
    features=features, folds=Backtest(horizon=horizon, gap=gap, dates=dates_of),
    recipes={"median": Recipe("median of the last 2 weeks", lambda params, seed: LastWeeksMedian(**params),
                              {"days": 14})},
    submission=SubmissionSpec("sample_submission.csv", id_col="Id", value_col="Visits", dtype="float",
                              bounds=(0, None)),
    submission_from=to_submission,
)


@pytest.mark.parametrize("gap_days", [0, 1])  # stage 1: forecast starts the day after train; stage 2: a day later
def test_a_forecasting_competition_runs_end_to_end(tmp_path, kit_home, gap_days):
    future = write_files(tmp_path / "mirror" / "toy-traffic", gap_days)
    LastWeeksMedian.seen = []
    record, folder = runner.train(TOY, "median", n_folds=3, data_dir=tmp_path / "mirror", progress=False)

    windows = record["folds"]["windows"]
    assert record["folds"]["kind"] == "backtest" and record["folds"]["horizon"] == HORIZON
    assert record["folds"]["gap"] == gap_days
    assert windows[-1]["last_day"] == "2016-04-29"  # the newest window ends at the last train day
    # each window forecasts HORIZON days after a gap, from the history before its cut-off
    for w in windows:
        first, last_history = pd.Timestamp(w["first_day"]), pd.Timestamp(w["last_history_day"])
        assert (first - last_history).days == gap_days + 1
        assert (pd.Timestamp(w["last_day"]) - first).days == HORIZON - 1
    assert LastWeeksMedian.seen == [DAYS - (3 - i) * HORIZON - gap_days for i in range(3)]
    assert len(record["cv"]["fold_scores"]) == 3 and all(0 < s < 200 for s in record["cv"]["fold_scores"])

    oof = pd.read_parquet(folder / "oof.parquet")  # series x validated days
    assert list(oof["Page"]) == [f"page_{i}" for i in range(SERIES)]
    assert oof.shape == (SERIES, 1 + 3 * HORIZON)
    test_pred = pd.read_parquet(folder / "test_pred.parquet")
    assert list(test_pred.columns[1:]) == [d.date().isoformat() for d in future]

    sub = pd.read_csv(folder / "submission.csv")
    key = pd.read_csv(tmp_path / "mirror" / "toy-traffic" / "key.csv")
    assert list(sub.columns) == ["Id", "Visits"] and list(sub["Id"]) == list(key["Id"])
    # the key row page_2_<first day> carries page_2's forecast for that day
    row = key.index[key["Page"] == f"page_2_{future[0].date().isoformat()}"][0]
    assert sub["Visits"][row] == pytest.approx(test_pred.loc[2, future[0].date().isoformat()])
    persisted = json.loads((folder / "run.json").read_text())["folds"]["path"]
    assert persisted.endswith(f"backtest-k3-h{HORIZON}-gap{gap_days}-step{HORIZON}.csv")


def test_key_rows_for_unforecast_series_are_refused():
    dates = pd.date_range("2016-05-01", periods=2)
    with pytest.raises(SubmissionError, match="1 key rows name a series or day that was not forecast"):
        forecast_for_keys(np.ones((2, 2)), np.array(["a", "b"]), dates, pd.Series(["a", "c"]),
                          pd.Series(["2016-05-01", "2016-05-02"]))


def test_persisted_windows_that_no_longer_fit_the_train_days_are_named(tmp_path, kit_home, monkeypatch, caplog):
    """The windows are persisted like row folds: damaged, they are called damaged; train cut short, they are
    refused naming the missing day; train grown, they are still used (same CV), with a warning on how to move on."""
    import sys

    mirror = tmp_path / "mirror"
    write_files(mirror / "toy-traffic", 0)
    path = runner.prepare(TOY, 3, mirror).folds.path
    good = path.read_text()
    path.write_text("last_history_day,first_day\nnot a day,2016-01-01\n")
    with pytest.raises(DataError, match=r"backtest windows file .* is damaged"):
        runner.prepare(TOY, 3, mirror)
    path.write_text(good)

    module, days = sys.modules[__name__], DAYS
    shutil.rmtree(mirror)
    monkeypatch.setattr(module, "DAYS", days + 7)
    write_files(mirror / "toy-traffic", 0)
    grown = runner.prepare(TOY, 3, mirror)
    assert grown.folds.path == path and "train now ends on 2016-05-06" in caplog.text
    assert "delete the file to backtest up to the new last day" in caplog.text

    shutil.rmtree(mirror)
    monkeypatch.setattr(module, "DAYS", days - 7)
    write_files(mirror / "toy-traffic", 0)
    with pytest.raises(DataError, match=r"the train days changed since .*: 2016-04-29 no longer in train"):
        runner.prepare(TOY, 3, mirror)
