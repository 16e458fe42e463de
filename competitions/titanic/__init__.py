"""Titanic - Machine Learning from Disaster: who survived? Binary target, accuracy."""

import pandas as pd

from common.competition import Competition, Data, FileSpec, SubmissionSpec, binary_labels
from common.data import DataFiles, read_table
from common.errors import DataError
from common.folds import RowFolds
from common.metrics import ACCURACY
from competitions.titanic import features
from competitions.titanic.recipes import RECIPES

PASSENGER = {"PassengerId": "int", "Pclass": "int", "Name": "str", "Sex": "str", "Age": "numeric", "SibSp": "int",
             "Parch": "int", "Ticket": "str", "Fare": "numeric", "Cabin": "any", "Embarked": "any"}
FILES = {
    "train.csv": FileSpec({**PASSENGER, "Survived": "int"}),
    "test.csv": FileSpec(PASSENGER),
    "gender_submission.csv": FileSpec({"PassengerId": "int", "Survived": "int"}),
}


def load(files: DataFiles) -> Data:
    tables = {name: read_table(files, name, spec) for name, spec in FILES.items()}
    train = tables["train.csv"]
    if not train["Survived"].isin([0, 1]).all():
        raise DataError("train.csv: Survived must be 0 or 1")
    return Data(train=train, test=tables["test.csv"], sample_submission=tables["gender_submission.csv"],
                target="Survived", id_col="PassengerId")


def make_features(data: Data) -> tuple[pd.DataFrame, pd.DataFrame]:
    return features.build(data.train, data.test)


COMPETITION = Competition(
    name="titanic",
    slug="titanic",
    task="binary",
    metric=ACCURACY,
    files=FILES,
    load=load,
    features=make_features,
    folds=RowFolds("stratified"),
    recipes=RECIPES,
    submission=SubmissionSpec("gender_submission.csv", id_col="PassengerId", value_col="Survived", dtype="int",
                              allowed=(0, 1)),
    decode=binary_labels,
)
