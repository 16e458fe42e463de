"""Decision thresholds for F1-like metrics, chosen on training rows only and folded into the probabilities.

Competitions decode binary predictions at 0.5. A model tuned for F1 usually wants another cut-off, so these wrappers
learn the cut-off from their own training rows (scikit-learn's TunedThresholdClassifierCV cross-validates it inside
them) and shift their probabilities so that 0.5 means that cut-off. Inside the CV engine the threshold is therefore
chosen without the validation fold, and the test set is never involved.
"""

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.metrics import make_scorer
from sklearn.model_selection import StratifiedKFold, TunedThresholdClassifierCV

from common.competition import binary_labels
from common.constraints import NON_NEGATIVE_INT, Checked, HasMethods, at_least
from common.metrics import f1_score


def shift_to_half(proba: np.ndarray, threshold: float) -> np.ndarray:
    """Monotone map of probabilities sending ``threshold`` to 0.5 (a shift in logit space)."""
    p = np.clip(np.asarray(proba, dtype=float), 1e-7, 1 - 1e-7)
    t = float(np.clip(threshold, 1e-7, 1 - 1e-7))
    logit = np.log(p / (1 - p)) - np.log(t / (1 - t))
    return 1 / (1 + np.exp(-logit))


def best_f1_threshold(y: np.ndarray, proba: np.ndarray) -> float:
    """The cut-off maximising F1 on (y, proba); ties go to the one nearest 0.5."""
    y = np.asarray(y).astype(int)
    candidates = np.unique(np.round(np.asarray(proba, dtype=float), 4))
    best, best_f1 = 0.5, -1.0
    for t in candidates:
        f1 = f1_score(y, proba >= t)
        if f1 > best_f1 + 1e-12 or (abs(f1 - best_f1) <= 1e-12 and abs(t - 0.5) < abs(best - 0.5)):
            best, best_f1 = float(t), f1
    return best


# TunedThresholdClassifierCV scores 100 cut-offs per inner fold; scikit-learn's ``f1_score`` spent 40 % of a TF-IDF
# model's fit in its input checks. The metric's own F1 from the counts gives the same value bit for bit.
F1_SCORER = make_scorer(f1_score)


class F1Threshold(Checked, ClassifierMixin, BaseEstimator):
    """Fit ``estimator``; pick the F1-best threshold by inner CV on the training rows; output shifted
    probabilities (0.5 = that threshold)."""

    _parameter_constraints: dict = {"estimator": [HasMethods(["fit", "predict_proba"])], "cv": at_least(2),
                                    "random_state": NON_NEGATIVE_INT}

    def __init__(self, estimator, cv: int = 5, random_state: int = 0):
        self.estimator = estimator
        self.cv = cv
        self.random_state = random_state

    def fit(self, X, y) -> "F1Threshold":
        self._validate_params()
        inner = StratifiedKFold(self.cv, shuffle=True, random_state=self.random_state)
        self.tuned_ = TunedThresholdClassifierCV(clone(self.estimator), scoring=F1_SCORER, cv=inner,
                                                 random_state=self.random_state).fit(X, y)
        self.threshold_ = float(self.tuned_.best_threshold_)
        self.classes_ = self.tuned_.classes_
        return self

    def predict_proba(self, X) -> np.ndarray:
        p = shift_to_half(self.tuned_.estimator_.predict_proba(X)[:, 1], self.threshold_)
        return np.c_[1 - p, p]

    def predict(self, X) -> np.ndarray:
        return binary_labels(self.predict_proba(X)[:, 1])
