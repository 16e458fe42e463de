"""Natural Language Processing with Disaster Tweets: is a tweet about a real disaster? Binary target, F1."""

import logging

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
from common.drift import DriftView, tabular_view, with_terms
from common.metrics import F1
from common.splitters import RowFolds
from common.tables import read_table, require
from competitions.disaster_tweets import features

log = logging.getLogger(__name__)

ID, TARGET = "id", "target"  # stated once; everything below refers to these

# An empty text is still a tweet that needs a prediction (the cleaning gives it an empty string), so a gap is allowed.
TWEET: dict[str, ColumnKind] = {ID: "int", "keyword": "any", "location": "any", "text": "any"}
FILES = {
    "train.csv": FileSpec({**TWEET, TARGET: "int"}, unique=(ID,)),
    "test.csv": FileSpec(TWEET, unique=(ID,)),
    "sample_submission.csv": FileSpec({ID: "int", TARGET: "int"}, unique=(ID,)),
}
# Tweets may hold bytes that are not UTF-8: replace them rather than refuse the file.
READ = {"encoding": "utf-8", "encoding_errors": "replace", "keep_default_na": False, "na_values": [""]}


def load(files: DataFiles) -> Data:
    train = read_table(files, "train.csv", FILES["train.csv"], **READ)
    test = read_table(files, "test.csv", FILES["test.csv"], **READ)
    sample = read_table(files, "sample_submission.csv", FILES["sample_submission.csv"])
    require(train, train[TARGET].isin([0, 1]), "train.csv", TARGET, "0 or 1", ID)
    groups = features.duplicate_key(train["text"])
    conflicting = train.groupby(groups)[TARGET].nunique()
    if (conflicting > 1).any():
        log.info("%d duplicate tweets carry conflicting labels; they share a fold so CV never splits them",
                 int((conflicting > 1).sum()))
    return Data(train=train, test=test, sample_submission=sample, target=TARGET, id_col=ID,
                extras={"duplicate_groups": groups.to_numpy()})


def make_features(data: Data) -> tuple[pd.DataFrame, pd.DataFrame]:
    return features.build(data.train), features.build(data.test)


def drift_view(data: Data, X: pd.DataFrame, X_test: pd.DataFrame) -> DriftView:
    """Keyword and location flag, plus TF-IDF words and word pairs of the cleaned text."""
    return with_terms(tabular_view(X, X_test), X["clean_text"], X_test["clean_text"])


COMPETITION = Competition(
    name="disaster-tweets",
    slug="nlp-getting-started",
    task="binary",
    metric=F1,
    files=FILES,
    load=load,
    features=make_features,
    folds=RowFolds("stratified-group", groups=lambda data: data.extras["duplicate_groups"]),
    recipes=LazyRecipes(f"{__name__}.recipes"),
    submission=SubmissionSpec("sample_submission.csv", id_col=ID, value_col=TARGET, dtype="int",
                              allowed=(0, 1)),
    decode=binary_labels,
    drift=drift_view,
)
