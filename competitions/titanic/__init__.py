"""Titanic - Machine Learning from Disaster: who survived? Binary target, accuracy."""

import pandas as pd

from common.competition import (
    ColumnKind,
    Competition,
    Data,
    DataFiles,
    FileSpec,
    LazyRecipes,
    SubmissionSpec,
    binary_labels,
)
from common.metrics import ACCURACY
from common.splitters import RowFolds
from common.tables import read_table, require
from competitions.titanic import features

ID, TARGET = "PassengerId", "Survived"  # stated once; everything below refers to these

PASSENGER: dict[str, ColumnKind] = {ID: "int", "Pclass": "int", "Name": "str", "Sex": "str", "Age": "numeric",
                                    "SibSp": "int", "Parch": "int", "Ticket": "str", "Fare": "numeric", "Cabin": "any",
                                    "Embarked": "any"}
BOUNDS = {"Pclass": (1, 3), "Age": (0, 120), "SibSp": (0, None), "Parch": (0, None), "Fare": (0, None)}
FILES = {
    "train.csv": FileSpec({**PASSENGER, TARGET: "int"}, unique=(ID,), bounds=BOUNDS),
    "test.csv": FileSpec(PASSENGER, unique=(ID,), bounds=BOUNDS),
    "gender_submission.csv": FileSpec({ID: "int", TARGET: "int"}, unique=(ID,)),
}


def load(files: DataFiles) -> Data:
    tables = {name: read_table(files, name, spec) for name, spec in FILES.items()}
    train = tables["train.csv"]
    require(train, train[TARGET].isin([0, 1]), "train.csv", TARGET, "0 or 1", ID)
    return Data(train=train, test=tables["test.csv"], sample_submission=tables["gender_submission.csv"],
                target=TARGET, id_col=ID)


def make_features(data: Data) -> tuple[pd.DataFrame, pd.DataFrame]:
    return features.build(data.train, data.test, data.target)


COMPETITION = Competition(
    name="titanic",
    slug="titanic",
    task="binary",
    metric=ACCURACY,
    files=FILES,
    load=load,
    features=make_features,
    folds=RowFolds("stratified"),
    recipes=LazyRecipes(f"{__name__}.recipes"),
    submission=SubmissionSpec("gender_submission.csv", id_col=ID, value_col=TARGET, dtype="int",
                              allowed=(0, 1)),
    decode=binary_labels,
)
