"""Value ranges of the toolkit's own estimators, declared in scikit-learn's format (``_parameter_constraints``).

Why: scikit-learn checks its own estimators' params before fitting, so ``--params '{"C": -1}'`` is one usage line
before any data is loaded (``common.params.check_buildable``). Our estimators declare their ranges the same way, so
``{"epochs": 0}`` or ``{"weekday": -1}`` is refused as early, with the same kind of message, instead of training a
model that means nothing or failing deep inside a fold. ``fit`` checks them too, for callers from Python.

Checks that a range cannot say (a list of positive windows, weights naming members) go in the estimator's
``_check_values``, which ``Checked._validate_params`` runs after scikit-learn's. scikit-learn keeps these tools in a
private module: it is imported only here, so a move in a later release is a change of one line.
"""

from numbers import Integral, Real

from sklearn.utils._param_validation import HasMethods, Interval, StrOptions

__all__ = ["Checked", "HasMethods", "StrOptions", "POSITIVE_INT", "NON_NEGATIVE_INT", "POSITIVE", "NON_NEGATIVE",
           "BOOLEAN", "TEXT", "OPTIONAL_TEXT", "FIT_PREDICT", "at_least", "between"]

POSITIVE_INT = [Interval(Integral, 1, None, closed="left")]
NON_NEGATIVE_INT = [Interval(Integral, 0, None, closed="left")]
POSITIVE = [Interval(Real, 0, None, closed="neither")]
NON_NEGATIVE = [Interval(Real, 0, None, closed="left")]
BOOLEAN = ["boolean"]
TEXT = [str]
OPTIONAL_TEXT = [str, None]
FIT_PREDICT = [HasMethods(["fit", "predict"])]


def at_least(low: int, high: int | None = None) -> list:
    """A whole number from ``low`` up (to ``high`` included, if given)."""
    return [Interval(Integral, low, high, closed="left" if high is None else "both")]


def between(low: float, high: float, closed: str = "both") -> list:
    """A number between ``low`` and ``high``; ``closed`` as scikit-learn's Interval: both, left, right, neither."""
    return [Interval(Real, low, high, closed=closed)]


class Checked:
    """Mixin (before ``BaseEstimator``): scikit-learn's range checks, then the estimator's own ``_check_values``."""

    _parameter_constraints: dict = {}

    def _validate_params(self) -> None:
        super()._validate_params()  # type: ignore[misc]
        self._check_values()

    def _check_values(self) -> None:
        """Raise ValueError for a value no range can describe; nothing by default."""
