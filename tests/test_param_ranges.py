"""Every param a user can change has a declared range, checked before any data is loaded (common/constraints.py)."""

import importlib
import inspect
import pkgutil

import optuna
import pytest
from sklearn.base import BaseEstimator

import common
import competitions
from common.constraints import Checked
from common.errors import UsageError
from common.params import check_buildable, merge, resolve

from conftest import run_script
from test_bad_input import one_error_line


def _toolkit_estimators() -> list[type]:
    found = []
    for package in (common, competitions):
        for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            loaded = importlib.import_module(module.name)
            found += [cls for _, cls in inspect.getmembers(loaded, inspect.isclass)
                      if issubclass(cls, BaseEstimator) and cls.__module__ == module.name]
    return found


def test_every_toolkit_estimator_declares_the_range_of_each_of_its_params():
    """A new estimator (or a new param) without a declared range fails here, so no value goes unchecked."""
    estimators = _toolkit_estimators()
    assert len(estimators) >= 20  # the walk found the modules
    for cls in estimators:
        assert issubclass(cls, Checked), f"{cls.__module__}.{cls.__name__} does not check its params"
        missing = set(cls._get_param_names()) - set(cls._parameter_constraints)
        assert not missing, f"{cls.__module__}.{cls.__name__}: no range for {sorted(missing)}"


def test_every_recipe_and_every_tuning_proposal_is_inside_the_ranges():
    """The ranges must never refuse a recipe's own params or a value its search space proposes."""
    for name in competitions.names():
        comp = competitions.get(name)
        for recipe_name, recipe in comp.recipes.items():
            check_buildable(comp, recipe_name, resolve(comp, recipe_name), 0)
            if recipe.space:
                study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
                for _ in range(5):
                    changes = recipe.space(study.ask())
                    check_buildable(comp, recipe_name, resolve(comp, recipe_name, changes), 0)


@pytest.mark.parametrize(
    ("competition", "recipe", "changes", "message"),
    [
        ("titanic", "default", {"margin": 0.5}, r"'margin' parameter of WomenChildrenGroups must be .* \[0.0, 0.5\)"),
        ("titanic", "default", {"decide": ["girl"]}, r"unknown segments \['girl'\]"),
        ("titanic", "blend", {"weight_logreg": 1.7}, r"weight_logreg must be between 0 and 1"),
        ("house-prices", "default", {"meta": {"far": -1}}, r"far must be above 0"),
        ("disaster-tweets", "finetune-top", {"max_length": 0}, r"'max_length' parameter .* \[2, inf\)"),
        ("disaster-tweets", "finetune-top", {"epochs": 0}, r"'epochs' parameter of TransformerClassifier"),
        ("digit-recognizer", "fast", {"epochs": 0}, r"'epochs' parameter of DigitCNN must be .* \[1, inf\)"),
        ("digit-recognizer", "fast", {"tta_shifts": -1}, r"'tta_shifts' parameter"),
        ("digit-recognizer", "fast", {"max_steps_per_epoch": 0}, r"'max_steps_per_epoch' parameter"),
        ("digit-recognizer", "ensemble", {"models": 0}, r"models must be 1 or more"),
        ("digit-recognizer", "knn", {"components": 0}, r"components must be 1 or more"),
        ("web-traffic", "median", {"windows": [0, 7]}, r"windows must be one or more lengths in days"),
        ("web-traffic", "median", {"windows": []}, r"windows must be one or more lengths in days"),
        ("web-traffic", "weekday", {"weekday": -1}, r"'weekday' parameter of MedianForecaster"),
        ("web-traffic", "weekday", {"weeks": 0}, r"'weeks' parameter"),
        ("web-traffic", "fast", {"weights": {"lgbm": -1}}, r"blend weights must be numbers from 0 up"),
        ("web-traffic", "fast", {"weights": {"lgbm": 0, "median": 0}}, r"at least one member above 0"),
        ("web-traffic", "fast", {"lgbm": {"max_cuts": 0}}, r"'max_cuts' parameter of GlobalLGBM"),
        ("web-traffic", "default", {"rnn": {"encoder_days": 0}}, r"'encoder_days' parameter of Seq2SeqForecaster"),
        ("web-traffic", "rnn", {"epochs": 0}, r"'epochs' parameter of Seq2SeqForecaster"),
    ],
)
def test_a_value_out_of_range_is_one_usage_error(competition, recipe, changes, message):
    comp = competitions.get(competition)
    with pytest.raises(UsageError, match=rf"recipe '{recipe}' of {competition} cannot use these params: .*{message}"):
        check_buildable(comp, recipe, resolve(comp, recipe, changes), 0)


def test_the_cli_refuses_an_out_of_range_value_before_touching_anything(kit_home):
    result = run_script("train.py", "web-traffic", "--recipe", "weekday", "--params", '{"weeks": 0}')
    assert "'weeks' parameter of MedianForecaster must be an int in the range [1, inf)" in one_error_line(result, 2)
    assert not any(kit_home.iterdir())  # no data read, no folds, no run folder


def test_estimators_check_their_ranges_when_fitted_from_python():
    from competitions.web_traffic.baselines import MedianForecaster

    with pytest.raises(ValueError, match="windows must be"):
        MedianForecaster(windows=(0,)).fit(None)


DEFAULTS = {"on": True, "trees": 100, "rate": 0.1, "kind": "l2", "layers": [64, 32], "extra": None,
            "inner": {"depth": 3}}


@pytest.mark.parametrize(("change", "merged"), [
    ({"trees": 300.0}, {"trees": 300}),  # JSON written by hand or by a float-valued search space
    ({"rate": 1}, {"rate": 1.0}),
    ({"layers": (128,)}, {"layers": [128]}),
    ({"extra": "anything"}, {"extra": "anything"}),  # no default: no type to hold it to
    ({"inner": {"depth": 5}}, {"inner": {"depth": 5}}),
])
def test_params_take_the_type_of_the_recipes_value(change, merged):
    assert merge(DEFAULTS, change, "toy") == {**DEFAULTS, **merged}


@pytest.mark.parametrize(("change", "message"), [
    ({"on": 1}, "param 'on' of toy must be true or false, got 1"),
    ({"trees": 2.5}, "param 'trees' of toy must be a whole number, got 2.5"),
    ({"trees": True}, "param 'trees' of toy must be a whole number, got True"),
    ({"rate": "fast"}, "param 'rate' of toy must be a number, got 'fast'"),
    ({"kind": 2}, "param 'kind' of toy must be a string, got 2"),
    ({"layers": 64}, "param 'layers' of toy must be a list, got 64"),
    ({"inner": {"depht": 4}}, r"unknown param 'depht' for toy > inner \(did you mean 'depth'\?\); its params are: "
                              "depth=3"),
    ({"inner": 4}, "params for toy > inner must be a JSON object, got int"),
    ({"tress": 10}, r"unknown param 'tress' for toy \(did you mean 'trees'\?\); its params are: on=True, "
                    "trees=100, .*; sections: inner"),
    ({"zzz": 10}, "unknown param 'zzz' for toy; its params are: "),  # nothing close: no suggestion
])
def test_a_param_of_the_wrong_type_or_name_is_one_usage_line(change, message):
    with pytest.raises(UsageError, match=message):
        merge(DEFAULTS, change, "toy")
