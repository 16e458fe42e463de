"""A recipe's params with a user's changes on top: merged, checked by name and type, and tried on the model before
any data is touched.

``--params`` (a JSON file, a tuned trial, a run.json) only ever *changes* a recipe's params: whatever it leaves out
keeps the recipe's value. A name the recipe does not have is refused with the list of names it does have - a typo
must never train a model on its library defaults.
"""

import hashlib
import json
from pathlib import Path
from typing import Any

from common.competition import Competition
from common.errors import UsageError, did_you_mean


def _type_ok(default: Any, value: Any) -> Any:
    """``value`` converted to the type of ``default``, or a ValueError saying what was expected."""
    if default is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        raise ValueError("true or false")
    if isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ValueError("a whole number")
    if isinstance(default, float):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ValueError("a number")
    if isinstance(default, str):
        if isinstance(value, str):
            return value
        raise ValueError("a string")
    if isinstance(default, list | tuple):
        if isinstance(value, list | tuple):
            return type(default)(value)
        raise ValueError("a list")
    return value


def merge(defaults: dict[str, Any], changes: dict[str, Any] | None, where: str) -> dict[str, Any]:
    """``defaults`` with ``changes`` on top, nested dicts merged key by key; unknown names and wrong types are one
    usage error each."""
    merged = dict(defaults)
    if not changes:
        return merged
    if not isinstance(changes, dict):
        raise UsageError(f"params for {where} must be a JSON object, got {type(changes).__name__}")
    for key, value in changes.items():
        if key not in defaults:
            valid = ", ".join(f"{k}={defaults[k]!r}" for k in defaults if not isinstance(defaults[k], dict))
            nested = ", ".join(k for k in defaults if isinstance(defaults[k], dict))
            listing = "; ".join(p for p in (valid, f"sections: {nested}" if nested else "") if p) or "none"
            raise UsageError(f"unknown param {key!r} for {where}{did_you_mean(key, defaults)}; its params are: "
                             f"{listing}")
        default = defaults[key]
        if isinstance(default, dict):
            merged[key] = merge(default, value, f"{where} > {key}")
            continue
        try:
            merged[key] = _type_ok(default, value)
        except ValueError as exc:
            raise UsageError(f"param {key!r} of {where} must be {exc}, got {value!r}") from None
    return merged


def recipe_defaults(comp: Competition, recipe_name: str) -> dict[str, Any]:
    """Every param a recipe runs with. A stack's are ``meta`` (its meta-model) and ``members`` (each member's
    own params, with the stack's changes to them)."""
    recipe = comp.recipe(recipe_name)
    if not recipe.members:
        return dict(recipe.params)
    stack_members = recipe.params.get("members", {})
    return {
        "meta": dict(recipe.params.get("meta", {})),
        "members": {m: merge(comp.recipe(m).params, stack_members.get(m), f"{comp.name}/{m}")
                    for m in recipe.members},
    }


def resolve(comp: Competition, recipe_name: str, changes: dict[str, Any] | None = None) -> dict[str, Any]:
    """The params a run uses: the recipe's, with ``changes`` merged on top (idempotent: resolving full params gives
    them back unchanged)."""
    return merge(recipe_defaults(comp, recipe_name), changes, f"recipe {recipe_name!r} of {comp.name}")


def estimators_in(model: Any) -> list[Any]:
    """``model`` and every estimator inside it: pipeline steps, wrapped estimators, and the members a blend keeps in
    a dict (which scikit-learn's ``get_params(deep=True)`` does not open)."""
    from sklearn.base import BaseEstimator

    if isinstance(model, dict):
        return [e for value in model.values() for e in estimators_in(value)]
    if isinstance(model, list | tuple):  # a pipeline's (name, step) pairs, a column transformer's triples
        return [e for value in model for e in estimators_in(value)]
    if not isinstance(model, BaseEstimator):
        return []
    return [model, *estimators_in(model.get_params(deep=False))]


def check_buildable(comp: Competition, recipe_name: str, params: dict[str, Any], seed: int) -> None:
    """Build the recipe's model(s) and let scikit-learn check every parameter's value now, so ``{"C": -1}`` is one
    usage line before any data is loaded, not a traceback from the first fold."""
    recipe = comp.recipe(recipe_name)
    builds = [(recipe_name, recipe.make_model, params.get("meta", {}) if recipe.members else params)]
    builds += [(m, comp.recipe(m).make_model, params["members"][m]) for m in recipe.members]
    for name, make_model, values in builds:
        try:
            model = make_model(values, seed)
            for estimator in estimators_in(model):
                if getattr(type(estimator), "_parameter_constraints", None):
                    estimator._validate_params()
        except (ValueError, TypeError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UsageError(f"recipe {name!r} of {comp.name} cannot use these params: {first}") from exc


def params_from_file(path: str | Path) -> tuple[dict, dict]:
    """Params from a JSON file (the params themselves or a run.json / export holding ``params``), or written inline
    as a JSON object (``--params '{"C": 0.5}'``)."""
    if isinstance(path, str) and path.lstrip().startswith(("{", "[")):
        try:
            inline = json.loads(path)
        except ValueError as exc:
            raise UsageError(f"--params {path} is not valid JSON: {exc}") from exc
        if not isinstance(inline, dict):
            raise UsageError(f"--params must be a JSON object of params, such as '{{\"C\": 0.5}}'; got {path}")
        return inline, {"kind": "inline", "sha256": hashlib.sha256(path.encode()).hexdigest()}
    path = Path(path).expanduser()
    try:
        raw = path.read_bytes()
        loaded = json.loads(raw)
    except OSError as exc:
        raise UsageError(f"cannot read params file {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise UsageError(f"params file {path} is not valid JSON: {exc}") from exc
    params = loaded.get("params", loaded) if isinstance(loaded, dict) else None
    if not isinstance(params, dict):
        raise UsageError(f"params file {path} must hold a JSON object of params")
    return params, {"kind": "file", "path": str(path.resolve()), "sha256": hashlib.sha256(raw).hexdigest()}
