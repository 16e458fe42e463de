"""House Prices - Advanced Regression Techniques: sale price from 79 house features; RMSLE."""

import logging

import numpy as np
import pandas as pd

from common.competition import Competition, Data, FileSpec, SubmissionSpec
from common.data import DataFiles, read_table
from common.errors import DataError
from common.folds import RowFolds
from common.metrics import RMSLE
from competitions.house_prices import features
from competitions.house_prices.recipes import RECIPES

log = logging.getLogger(__name__)

HOUSE = {"Id": "int", "MSSubClass": "int", "Neighborhood": "str", "OverallQual": "int", "OverallCond": "int",
         "YearBuilt": "int", "YearRemodAdd": "int", "YrSold": "int", "GrLivArea": "numeric", "LotArea": "numeric",
         "TotalBsmtSF": "numeric", "1stFlrSF": "numeric", "2ndFlrSF": "numeric", "LotFrontage": "numeric",
         "MasVnrArea": "numeric", "GarageArea": "numeric", "GarageYrBlt": "numeric"}
FILES = {
    "train.csv": FileSpec({**HOUSE, "SalePrice": "numeric"}),
    "test.csv": FileSpec(HOUSE),
    "sample_submission.csv": FileSpec({"Id": "int", "SalePrice": "numeric"}),
    "data_description.txt": FileSpec({}),
}
# Only "NA" is missing: the data uses "None" as a real value (MasVnrType), which pandas would otherwise eat.
READ = {"keep_default_na": False, "na_values": ["NA", ""]}


def load(files: DataFiles) -> Data:
    train = read_table(files, "train.csv", FILES["train.csv"], **READ)
    test = read_table(files, "test.csv", FILES["test.csv"], **READ)
    sample = read_table(files, "sample_submission.csv", FILES["sample_submission.csv"])
    expected = [c for c in train.columns if c != "SalePrice"]
    missing = [c for c in expected if c not in test.columns]
    extra = [c for c in test.columns if c not in expected]
    if missing or extra:
        raise DataError("test.csv columns differ from train.csv: "
                        + "; ".join(p for p in (f"missing {', '.join(missing)}" if missing else "",
                                                f"extra {', '.join(extra)}" if extra else "") if p))
    test = test[expected]
    if (train["SalePrice"] <= 0).any() or train["SalePrice"].isna().any():
        raise DataError("train.csv: SalePrice must be a positive number on every row")
    description = files.path("data_description.txt").read_text(encoding="utf-8", errors="replace")
    none_cols = features.none_columns(description)
    if not none_cols:
        raise DataError("data_description.txt lists no 'NA' values; is it the competition's file?")
    return Data(train=train, test=test, sample_submission=sample, target="SalePrice", id_col="Id",
                extras={"none_columns": sorted(none_cols)})


def make_features(data: Data) -> tuple[pd.DataFrame, pd.DataFrame]:
    return features.build(data.train, data.test, set(data.extras["none_columns"]))


def decode(prices: np.ndarray) -> np.ndarray:
    """Clip negative prices to 0 (with a warning): a price below 0 has no meaning and RMSLE is undefined there,
    while one wild extrapolation should not cost the whole submission. NaN is refused before this runs."""
    prices = np.asarray(prices, dtype=float)
    negative = int((prices < 0).sum())
    if negative:
        log.warning("clipped %d negative price predictions to 0", negative)
    return np.clip(prices, 0, None)


COMPETITION = Competition(
    name="house-prices",
    slug="house-prices-advanced-regression-techniques",
    task="regression",
    metric=RMSLE,
    files=FILES,
    load=load,
    features=make_features,
    folds=RowFolds("kfold"),
    recipes=RECIPES,
    submission=SubmissionSpec("sample_submission.csv", id_col="Id", value_col="SalePrice", dtype="float",
                              bounds=(0, None)),
    decode=decode,
)
