import math

import numpy as np
import pytest

from common.metrics import ACCURACY, F1, RMSLE, SMAPE


def test_accuracy_by_hand():
    assert ACCURACY([1, 0, 1, 1], [1, 1, 1, 0]) == pytest.approx(0.5)
    assert ACCURACY.greater_is_better


def test_f1_by_hand():
    # tp=2, fp=1, fn=1 -> 2*2 / (2*2 + 1 + 1) = 4/6
    assert F1([1, 1, 1, 0, 0], [1, 1, 0, 1, 0]) == pytest.approx(4 / 6)
    assert F1([0, 0], [0, 0]) == 0.0


def test_rmsle_by_hand():
    # log1p(e-1)=1, log1p(0)=0 -> errors 1 and 0 -> sqrt(1/2)
    assert RMSLE([math.e - 1, 0.0], [0.0, 0.0]) == pytest.approx(math.sqrt(0.5))
    assert not RMSLE.greater_is_better
    with pytest.raises(ValueError):
        RMSLE([1.0], [-1.0])


def test_smape_kaggle_conventions():
    # |110-100| / (100+110) = 10/210 ; both zero counts as 0 ; NaN actual skipped
    expected = 200 * np.mean([10 / 210, 0.0])
    assert SMAPE([100, 0, np.nan], [110, 0, 5]) == pytest.approx(expected)
    # one of the two is zero: |0-4|/(0+4) = 1 -> 200 %
    assert SMAPE([0], [4]) == pytest.approx(200.0)
    assert not SMAPE.greater_is_better


def test_direction_comparisons():
    assert ACCURACY.is_better(0.8, 0.7)
    assert RMSLE.is_better(0.11, 0.12)
    assert RMSLE.direction == "minimize"


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError):
        ACCURACY([1, 0], [1])
