"""Web Traffic Time Series Forecasting: daily visits of Wikipedia pages, forecast for the days a key file names.

train_N.csv is ``Page`` + one column per day (empty = missing); key_N.csv maps ``<Page>_<YYYY-MM-DD>`` to an
``Id``; the submission is ``Id,Visits``; the metric SMAPE. Stage 1 forecasts the 60 days right after train,
stage 2 (``web-traffic-stage2``) starts two days after train ends: horizon and gap come from the key file.
"""

import numpy as np
import pandas as pd

from common.blocks.series import last_window_view
from common.competition import Competition, Data, LazyRecipes, SubmissionSpec
from common.metrics import SMAPE
from common.splitters import Backtest, ForecastTask, Panel
from common.submission import forecast_at
from competitions.web_traffic import figures
from competitions.web_traffic.files import STAGES, Stage, load_stage, read_train

ID, TARGET = "Page", "Visits"
SLUG = "web-traffic-time-series-forecasting"


def make_features(data: Data) -> tuple[Panel, ForecastTask]:
    """The panel of every page's visits with its project / access / agent, and the days the key asks for. (Not
    named ``features``: the recipes, imported later, import the ``features`` module, which would take that name.)"""
    panel = Panel(data.train[ID].to_numpy(), data.extras["dates"], data.y,
                  data.train[["project", "access", "agent"]].reset_index(drop=True))
    return panel, ForecastTask(panel, data.extras["future"])


def horizon(data: Data) -> int:
    return len(data.extras["future"])


def gap(data: Data) -> int:
    return int((data.extras["future"][0] - data.extras["dates"][-1]).days) - 1


def to_submission(data: Data, forecast: np.ndarray) -> pd.DataFrame:
    """Each key row gets its page's forecast for its day (pages not in train: 0), in the sample's Id order."""
    key = data.test
    day = data.extras["future"].get_indexer(pd.DatetimeIndex(key["day"]))
    values = forecast_at(forecast, key["series"].to_numpy(), day, missing=0.0)
    # the ids stay Arrow text: as numpy arrays they would be 9 million Python strings each (1.3 GB at full size)
    sample_ids = pd.Index(data.sample_submission["Id"])
    if not sample_ids.equals(pd.Index(key["Id"])):
        values = pd.Series(values, index=pd.Index(key["Id"])).reindex(sample_ids).to_numpy()
    return pd.DataFrame({"Id": sample_ids.array, "Visits": values})


def drift_view(data: Data, X: Panel, X_test: ForecastTask):
    """The last forecast-length window of every page against its earlier windows."""
    return last_window_view(X, len(X_test.dates))


def make(stage: Stage, name: str, default_folds: int, cache_name: str | None = None,
         shares_download_with: tuple[tuple[str, str], ...] = ()) -> Competition:
    """``default_folds``: backtest windows when none are asked for - only as many as still train every model the
    way the final fit does: 3 of 60 days in stage 1's 490-550 days (their LightGBM gets 14-16 cut-offs like the
    refit's 16; older windows got 6-10 and ranked the members otherwise, BENCHMARKS.md), 5 in stage 2's 803."""
    def pictures(run):  # the report's pictures need the truth of the backtest days: the train file, read again
        from common import data as data_layer

        def history() -> figures.History:
            pages, dates, visits = read_train(data_layer.files_for(comp, used_by=run.data), stage.train,
                                              stage.specs[stage.train])
            return figures.History(pages["Page"], dates, visits)

        return figures.figures(run, history)

    comp = Competition(
        name=name, slug=SLUG, task="forecast", metric=SMAPE, files=stage.specs,
        load=lambda files: load_stage(files, stage), features=make_features,
        # windows as long as the key's horizon, after the key's gap, the newest ending on the last train day
        folds=Backtest(horizon=horizon, gap=gap, dates=lambda data: data.extras["dates"], min_history=56,
                       min_splits=3),
        recipes=LazyRecipes(f"{__name__}.recipes"),
        submission=SubmissionSpec(stage.sample, id_col="Id", value_col="Visits", dtype="float", bounds=(0, None)),
        submission_from=to_submission,
        figures=pictures,
        drift=drift_view,
        counts=True,
        default_folds=default_folds,
        cache_name=cache_name,
        shares_download_with=shares_download_with,
    )
    return comp


# stage 2's name, and its own cache: one shared cache would swap the stages out in turn (a download each time)
STAGE2 = "web-traffic-stage2"
COMPETITION = make(STAGES[1], "web-traffic", default_folds=3, shares_download_with=((STAGE2, STAGE2),))
