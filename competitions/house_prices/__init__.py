"""House Prices - Advanced Regression Techniques: sale price from 79 house features; RMSLE."""

import logging

import numpy as np
import pandas as pd

from common.competition import ColumnKind, Competition, Data, DataFiles, FileSpec, LazyRecipes, SubmissionSpec
from common.errors import DataError
from common.metrics import RMSLE
from common.splitters import RowFolds
from common.tables import read_table, require
from competitions.house_prices import features

log = logging.getLogger(__name__)

ID, TARGET = "Id", "SalePrice"  # stated once; everything below refers to these

# Every numeric column of the competition's files is declared, so a stray word turns into an error naming its row
# instead of silently making the column categorical. Whole numbers where no row is missing; areas and counts >= 0.
WHOLE = ["MSSubClass", "LotArea", "OverallQual", "OverallCond", "YearBuilt", "YearRemodAdd", "1stFlrSF", "2ndFlrSF",
         "LowQualFinSF", "GrLivArea", "FullBath", "HalfBath", "BedroomAbvGr", "KitchenAbvGr", "TotRmsAbvGrd",
         "Fireplaces", "WoodDeckSF", "OpenPorchSF", "EnclosedPorch", "3SsnPorch", "ScreenPorch", "PoolArea", "MiscVal",
         "MoSold", "YrSold"]
GAPPY = ["LotFrontage", "MasVnrArea", "BsmtFinSF1", "BsmtFinSF2", "BsmtUnfSF", "TotalBsmtSF", "BsmtFullBath",
         "BsmtHalfBath", "GarageYrBlt", "GarageCars", "GarageArea"]
HOUSE: dict[str, ColumnKind] = {ID: "int", "Neighborhood": "str", **{c: "int" for c in WHOLE},
                                **{c: "numeric" for c in GAPPY}}
# Plausible ranges, generous enough for any house but not for damage: a garage of 1e12 sq ft passed ">= 0" and its
# squares overflowed inside the linear members (a traceback). The files' largest values: lot 215 245 sq ft, other
# areas 6 110, 5 of a count, MiscVal $17 000, GarageYrBlt 2207 (a typo of 2007 in test.csv, kept as Kaggle ships it).
AREAS = [c for c in WHOLE + GAPPY if "SF" in c or c.endswith(("Area", "Porch"))]
COUNTS = ["FullBath", "HalfBath", "BedroomAbvGr", "KitchenAbvGr", "TotRmsAbvGrd", "Fireplaces", "BsmtFullBath",
          "BsmtHalfBath", "GarageCars"]
BOUNDS = {**{c: (0, None) for c in WHOLE + GAPPY}, **{c: (0, 100_000) for c in AREAS}, **{c: (0, 100) for c in COUNTS},
          "LotArea": (0, 10_000_000), "LotFrontage": (0, 10_000), "MiscVal": (0, 100_000_000), "MSSubClass": (0, 1000),
          "OverallQual": (1, 10), "OverallCond": (1, 10), "MoSold": (1, 12), "GarageYrBlt": (1800, 2300),
          "YearBuilt": (1800, 2100), "YearRemodAdd": (1800, 2100), "YrSold": (1800, 2100)}
MAX_PRICE = 1_000_000_000  # the files' largest is $755 000; a price near 1e308 overflowed the stack (a traceback)
FILES = {
    "train.csv": FileSpec({**HOUSE, TARGET: "numeric"}, unique=(ID,), bounds=BOUNDS),
    "test.csv": FileSpec(HOUSE, unique=(ID,), bounds=BOUNDS),
    "sample_submission.csv": FileSpec({ID: "int", TARGET: "numeric"}, unique=(ID,)),
    "data_description.txt": FileSpec({}),
}
# Only "NA" is missing: the data uses "None" as a real value (MasVnrType), which pandas would otherwise eat.
READ = {"keep_default_na": False, "na_values": ["NA", ""]}


def load(files: DataFiles) -> Data:
    train = read_table(files, "train.csv", FILES["train.csv"], **READ)
    test = read_table(files, "test.csv", FILES["test.csv"], **READ)
    sample = read_table(files, "sample_submission.csv", FILES["sample_submission.csv"])
    expected = [c for c in train.columns if c != TARGET]
    missing = [c for c in expected if c not in test.columns]
    extra = [c for c in test.columns if c not in expected]
    if missing or extra:
        raise DataError("test.csv columns differ from train.csv: "
                        + "; ".join(p for p in (f"missing {', '.join(missing)}" if missing else "",
                                                f"extra {', '.join(extra)}" if extra else "") if p))
    test = test[expected]
    require(train, train[TARGET] > 0, "train.csv", TARGET, "a positive number on every row", ID)
    require(train, train[TARGET] <= MAX_PRICE, "train.csv", TARGET, f"at most {MAX_PRICE:,} dollars", ID)
    description = files.path("data_description.txt").read_text(encoding="utf-8", errors="replace")
    none_cols = features.none_columns(description)
    if not none_cols:
        raise DataError("data_description.txt lists no 'NA' values; is it the competition's file?")
    return Data(train=train, test=test, sample_submission=sample, target=TARGET, id_col=ID,
                extras={"none_columns": sorted(none_cols)})


def make_features(data: Data) -> tuple[pd.DataFrame, pd.DataFrame]:
    return features.build(data.train, data.test, set(data.extras["none_columns"]), data.target, data.id_col)


def decode(prices: np.ndarray) -> np.ndarray:
    """Clip prices into 0..MAX_PRICE (with a warning): a price below 0 has no meaning and RMSLE is undefined there,
    one above the largest train.csv may hold (or an overflow to inf) is a linear member extrapolating from a test
    row far outside train, and one wild extrapolation should not cost the whole submission. NaN is refused before
    this runs."""
    prices = np.asarray(prices, dtype=float)
    negative = int((prices < 0).sum())
    if negative:
        log.warning("clipped %d negative price predictions to 0", negative)
    huge = int((prices > MAX_PRICE).sum())
    if huge:
        log.warning("clipped %d price predictions above $%s (the most train.csv may hold) to it: their test rows lie "
                    "far outside train - check them", huge, f"{MAX_PRICE:,}")
    return np.clip(prices, 0, MAX_PRICE)


COMPETITION = Competition(
    name="house-prices",
    slug="house-prices-advanced-regression-techniques",
    task="regression",
    metric=RMSLE,
    files=FILES,
    load=load,
    features=make_features,
    folds=RowFolds("kfold"),
    recipes=LazyRecipes(f"{__name__}.recipes"),
    submission=SubmissionSpec("sample_submission.csv", id_col=ID, value_col=TARGET, dtype="float",
                              bounds=(0, None)),
    decode=decode,
)
