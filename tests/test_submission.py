import hashlib

import numpy as np
import pandas as pd
import pytest

from common import submission
from common.competition import SubmissionSpec
from common.errors import SubmissionError

SPEC = SubmissionSpec("sample.csv", id_col="Id", value_col="Label", dtype="int", allowed=(0, 1))
SAMPLE = pd.DataFrame({"Id": [3, 1, 2], "Label": [0, 0, 0]})


def test_built_in_the_sample_order_and_dtype():
    sub = submission.build(SPEC, SAMPLE, ids=[1, 2, 3], values=np.array([1.0, 0.0, 1.0]))
    assert sub["Id"].tolist() == [3, 1, 2]
    assert sub["Label"].tolist() == [1, 1, 0]
    assert pd.api.types.is_integer_dtype(sub["Label"])


def test_nan_prediction_refused():
    with pytest.raises(SubmissionError, match="1 of 3 predictions are NaN"):
        submission.build(SPEC, SAMPLE, ids=[1, 2, 3], values=np.array([1.0, np.nan, 0.0]))


@pytest.mark.parametrize(
    ("ids", "values", "message"),
    [
        ([1, 2], [1, 0], "have no prediction"),
        ([1, 1, 2], [1, 0, 1], "duplicate test ids"),
        ([1, 2, 3], [1, 0, 2], "must be one of"),
        ([1, 2, 3], [1, 0.5, 1], "whole numbers"),
        ([1, 2, 3], [1, 0], "predictions for 3 test ids"),
    ],
)
def test_bad_predictions(ids, values, message):
    with pytest.raises(SubmissionError, match=message):
        submission.build(SPEC, SAMPLE, ids=ids, values=np.array(values))


def test_bounds_for_continuous_values():
    spec = SubmissionSpec("s.csv", id_col="Id", value_col="Price", dtype="float", bounds=(0, None))
    sample = pd.DataFrame({"Id": [1, 2], "Price": [1.0, 1.0]})
    with pytest.raises(SubmissionError, match="must lie in"):
        submission.build(spec, sample, ids=[1, 2], values=np.array([10.0, -1.0]))


GOOD = pd.DataFrame({"Id": [3, 1, 2], "Label": [1, 0, 1]})


@pytest.mark.parametrize(("edit", "message"), [
    (lambda f: f.iloc[[1, 0, 2]].reset_index(drop=True), "another order than the sample"),
    (lambda f: f.head(2), "2 rows; the sample submission has 3"),
    (lambda f: f.rename(columns={"Label": "label"}), "columns .* differ"),
    (lambda f: f.assign(Id=[3, 1, 1]), "Id repeats, e.g. 1"),
    (lambda f: f.assign(Id=[3, 1, 9]), "1 missing .*\\[2\\].*1 unknown"),  # e.g. the sample of a new test set
    (lambda f: f.assign(Label=[1.0, np.nan, 1.0]), "1 Label values are missing"),
    (lambda f: f.assign(Label=[1.0, np.inf, 1.0]), "1 Label values are infinite"),
    (lambda f: f.assign(Label=[1.0, 0.0, 1.0]), "must be integers, got float64"),
    (lambda f: f.assign(Label=[1, 0, 2]), "must be one of \\(0, 1\\), got 2"),
], ids=["order", "rows", "columns", "repeated-id", "other-ids", "nan", "inf", "float", "not-allowed"])
def test_validate_catches_edited_files(edit, message):
    submission.validate(GOOD, SAMPLE, SPEC)
    with pytest.raises(SubmissionError, match=message):
        submission.validate(edit(GOOD.copy()), SAMPLE, SPEC)


def test_validate_wants_numbers_where_the_sample_has_them():
    spec = SubmissionSpec("s.csv", id_col="Id", value_col="Price", dtype="float", bounds=(0, None))
    sample = pd.DataFrame({"Id": [1, 2], "Price": [1.0, 1.0]})
    with pytest.raises(SubmissionError, match="Price must be numeric, got"):
        submission.validate(pd.DataFrame({"Id": [1, 2], "Price": ["cheap", "dear"]}), sample, spec)


def test_write_and_publish_are_atomic(tmp_path, kit_home):
    sub = submission.build(SPEC, SAMPLE, ids=[1, 2, 3], values=np.array([1, 0, 1]))
    path, digest = submission.write_validated(sub, SAMPLE, SPEC, tmp_path / "run" / "submission.csv")
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    published = submission.publish(path, "toy")
    assert published == kit_home / "submissions" / "toy.csv"
    assert published.read_text() == "Id,Label\n3,1\n1,1\n2,0\n"
    assert not [p for p in published.parent.iterdir() if p.name.startswith(".")]
