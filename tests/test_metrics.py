import math

import numpy as np
import pytest

from common import metrics
from common.metrics import ACCURACY, F1, RMSLE, ROC_AUC, SMAPE, by_name


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
    assert math.isnan(SMAPE([np.nan, np.nan], [1, 2]))  # nothing to score: not a perfect 0
    assert not SMAPE.greater_is_better


def test_smape_in_steps_scores_a_block_of_days_as_the_cells_one_by_one(monkeypatch):
    """Web Traffic's backtest is scored as a series x days block, a few thousand cells at a time (no temporary the
    size of its 45 million cells): the same score as one pass over the cells, where the step's edges fall mid-row
    or across many rows, with missing actuals among them."""
    rng = np.random.default_rng(0)
    actual = rng.poisson(3, (301, 67)).astype(np.float32)
    actual[rng.random(actual.shape) < 0.1] = np.nan
    forecast = rng.poisson(3, actual.shape).astype(np.float64)
    block = (actual[:, 5:50], forecast[:, 5:50])  # strided views, as the run's out-of-fold block
    keep = ~np.isnan(block[0])
    a, f = block[0][keep].astype(float), block[1][keep]
    by_hand = 200 * np.mean(np.abs(f - a) / np.where(a + f == 0, 1, a + f))  # both 0: |f - a| is 0
    for step in (7, 64, 1 << 16):
        monkeypatch.setattr(metrics, "SMAPE_STEP_CELLS", step)
        assert SMAPE(*block) == pytest.approx(by_hand, rel=1e-13)
        assert SMAPE(block[0].ravel(), block[1].ravel()) == pytest.approx(by_hand, rel=1e-13)
    with pytest.raises(ValueError, match="shape"):
        SMAPE(actual, forecast[:, :3])


def test_roc_auc_by_rank_sum():
    # pairs (positive, negative) ordered right: (0.9, 0.1) (0.9, 0.5) (0.5, 0.1); the tie (0.5, 0.5) counts half
    assert ROC_AUC([1, 1, 0, 0], [0.9, 0.5, 0.5, 0.1]) == pytest.approx(3.5 / 4)
    with pytest.raises(ValueError, match="needs both classes"):
        ROC_AUC([1, 1], [0.2, 0.3])


def test_a_metric_a_run_names_is_found_or_rebuilt_with_its_direction():
    assert by_name("rmsle") is RMSLE
    own = by_name("my_mae", "minimize")  # a user's own metric: ranked in its direction, never recomputed
    assert own.is_better(0.1, 0.2) and by_name("my_auc", "maximize").is_better(0.9, 0.8)
    assert own.direction_in_words == "lower is better" and ACCURACY.direction_in_words == "higher is better"


def test_direction_comparisons():
    assert ACCURACY.is_better(0.8, 0.7)
    assert RMSLE.is_better(0.11, 0.12)
    assert RMSLE.direction == "minimize"


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError):
        ACCURACY([1, 0], [1])
