"""The Competition spec every package fills in; the spine only ever talks to this.

A competition is data (which files, which columns), a metric, how rows are folded, a set of named recipes, and how
raw model output becomes submission values. Tabular, text, image and time-series competitions all fit: the CV engine
sees a feature frame, a target and folds; what a "row" is stays the package's business.
"""

import importlib
import sys
import textwrap
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from common.errors import UsageError, did_you_mean
from common.metrics import Metric

# What a column must hold on every row: "int" a whole number (no gaps); "float" / "numeric" a finite number or a gap;
# "str" text (no gaps: names, tickets, pages); "any" anything, gaps included (a cabin, a keyword, a tweet's text).
ColumnKind = Literal["int", "float", "numeric", "str", "any"]
Task = Literal["binary", "regression", "multiclass", "forecast"]


@dataclass(frozen=True)
class FileSpec:
    """What a competition file must contain; checked when it is loaded."""

    columns: Mapping[str, ColumnKind]
    min_rows: int = 1
    # Column name patterns (prefix -> kind) for wide files such as pixel0..pixel783 or one column per day.
    column_prefixes: Mapping[str, ColumnKind] = field(default_factory=dict)
    # Columns whose values must not repeat (ids); the first also names rows in error messages.
    unique: tuple[str, ...] = ()
    # Plausible ranges (low, high; None = open) of numeric columns: a negative age or area is damage, not data.
    bounds: Mapping[str, tuple[float | None, float | None]] = field(default_factory=dict)


@dataclass(frozen=True)
class DataFiles:
    """Where a competition's files were found (what ``load`` reads), with their sha256 for the run record."""

    folder: Path
    source: str  # data-dir | kaggle-input | cache | kaggle-api
    sha256: dict[str, str]
    # The tables as loaded and checked on the way in (files just unpacked are checked before they may replace the
    # cache): loading them again would parse every file twice (~45 s for Web Traffic at full size).
    checked: "Data | None" = field(default=None, repr=False, compare=False)

    def path(self, name: str) -> Path:
        return self.folder / name


@dataclass
class Data:
    """A competition's raw tables after loading and validation."""

    train: pd.DataFrame
    test: pd.DataFrame
    sample_submission: pd.DataFrame
    target: str
    id_col: str
    extras: dict[str, Any] = field(default_factory=dict)
    # The truth when it is not one column of train: series x days for forecasting (train is then one row a series).
    labels: np.ndarray | None = None

    @property
    def y(self) -> np.ndarray:
        return self.labels if self.labels is not None else self.train[self.target].to_numpy()


@dataclass(frozen=True)
class Recipe:
    """A named way to build a model: plain params plus a factory, like an AutoGluon preset.

    ``make_model(params, seed)`` returns a fresh scikit-learn estimator (usually a Pipeline) so every fold fits its
    own preprocessing. ``space(trial)`` returns params for the tuning layer.

    A stacking recipe names ``members`` (other recipes of the competition): their out-of-fold predictions on the
    same persisted folds become the features of the meta-model that ``make_model`` builds (see common/stacking.py).
    """

    description: str
    make_model: Callable[[dict[str, Any], int], Any]
    params: dict[str, Any] = field(default_factory=dict)
    space: Callable[[Any], dict[str, Any]] | None = None
    members: tuple[str, ...] = ()
    # How many of the persisted folds a run scores by default (None: all). A model too slow to fit k times within
    # its budget scores one whole fold it never trained on; --folds-scored all runs the full CV.
    folds_scored: int | None = None
    # Test predictions from one model refitted on all of train (True) or the average of the fold models (False);
    # a stacking recipe's refit applies to its members (the meta-model is always the fold models' average).
    refit: bool = False
    # A stacking recipe's meta-model also gets these feature columns beside the members' predictions (scikit-learn's
    # StackingRegressor calls it passthrough): a flag saying which rows only some members learned to price.
    passthrough: tuple[str, ...] = ()


class LazyRecipes(MutableMapping[str, Recipe]):
    """A competition's recipes, imported from their module when first asked for: the libraries of their models
    (scikit-learn with scipy.stats, LightGBM, torch) take a second or more to import, which the commands that only
    read runs and files (submit, report, prune, download) never need. A dict otherwise: a recipe may be added."""

    def __init__(self, module: str, attribute: str = "RECIPES") -> None:
        self.module, self.attribute = module, attribute
        self._recipes: dict[str, Recipe] | None = None

    def _loaded(self) -> dict[str, Recipe]:
        if self._recipes is None:
            self._recipes = getattr(importlib.import_module(self.module), self.attribute)
        return self._recipes

    def __getitem__(self, name: str) -> Recipe:
        return self._loaded()[name]

    def __setitem__(self, name: str, recipe: Recipe) -> None:
        self._loaded()[name] = recipe

    def __delitem__(self, name: str) -> None:
        del self._loaded()[name]

    def __iter__(self):
        return iter(self._loaded())

    def __len__(self) -> int:
        return len(self._loaded())

    def __repr__(self) -> str:
        return f"LazyRecipes({self.module}.{self.attribute})"


@dataclass(frozen=True)
class SubmissionSpec:
    """How predictions become a file Kaggle accepts; ids and column order come from the sample submission."""

    sample_file: str
    id_col: str
    value_col: str
    dtype: Literal["int", "float"]
    # Allowed values: a tuple of discrete values, or (low, high) bounds for continuous values (None = unbounded).
    allowed: tuple | None = None
    bounds: tuple[float | None, float | None] | None = None


def binary_labels(proba: np.ndarray) -> np.ndarray:
    """Probabilities -> 0/1 at 0.5. Recipes that want another cut-off (F1) shift their probabilities instead
    (common.blocks.text.thresholds), so every binary competition decodes the same way."""
    return (np.asarray(proba) >= 0.5).astype(int)


@dataclass(frozen=True)
class Competition:
    name: str  # CLI name, e.g. "house-prices"
    slug: str  # Kaggle slug, e.g. "house-prices-advanced-regression-techniques"
    task: Task
    metric: Metric
    files: dict[str, FileSpec]
    load: Callable[[DataFiles], Data]  # validated raw tables
    # Label-free features for train and test: frames, arrays (images) or a Panel and ForecastTask (series).
    features: Callable[[Data], tuple[Any, Any]]
    folds: Any  # a splitter from common.splitters
    recipes: MutableMapping[str, Recipe]  # a dict, or LazyRecipes naming the module that holds them
    submission: SubmissionSpec
    # Raw model output (probabilities, log-prices...) -> values in the submission's space, used for scoring too.
    decode: Callable[[np.ndarray], np.ndarray] = lambda p: p
    # (data, decoded test predictions) -> the submission frame, for competitions that map through a key file;
    # None: one prediction per test row, aligned to the sample submission by id.
    submission_from: Callable[[Data, np.ndarray], pd.DataFrame] | None = None
    # The competition's own pictures of a run for the report: run record -> [(title, matplotlib figure)].
    figures: Callable[[Any], list[tuple[str, Any]]] | None = None
    # (data, X, X_test) -> the DriftView that adversarial validation classifies (common.drift); None: the feature
    # frames less the id column, for competitions whose features are a frame.
    drift: Callable[[Data, Any, Any], Any] | None = None
    # The target is a whole-number count (visits): an ensemble of runs also tries its blend rounded.
    counts: bool = False
    # For features that are an array (images): number of columns -> named sets of columns that permutation
    # importance shuffles together (one pixel alone tells little); None: such models record no importance.
    importance_groups: Callable[[int], dict[str, np.ndarray]] | None = None
    # Folds (backtest windows) when the user names none: a backtest may need fewer windows, so that each of them
    # trains its models the way the final fit does.
    default_folds: int = 5
    # The cache folder under data/ (default: the slug). Competitions that share a slug but need other files of its
    # download (Web Traffic's two stages) get their own, or each would swap the other's files out - a download each.
    cache_name: str | None = None
    # (name, cache) of the other competitions unpacked from the same Kaggle download (Web Traffic's other stage):
    # the download is kept until each of them has a cache, so that running the other stage does not fetch it again.
    shares_download_with: tuple[tuple[str, str], ...] = ()

    @property
    def cache(self) -> str:
        return self.cache_name or self.slug

    def recipe_lines(self) -> list[str]:
        """One line per recipe for ``train.py --list-recipes``: name, what kind (an alias, a stack of which members,
        tunable) and its description - so a user picks one without reading the source."""
        width = max(len(n) for n in self.recipes)
        lines = []
        for name in sorted(self.recipes):
            recipe = self.recipes[name]
            alias = next((n for n, r in self.recipes.items() if r is recipe and n != name), None)
            tags = [f"= {alias}" if name == "default" and alias else "",
                    f"stack of {', '.join(recipe.members)}" if recipe.members else "",
                    "tunable" if recipe.space is not None else ""]
            tag = "; ".join(t for t in tags if t)
            lines.append(textwrap.fill(f"{f'[{tag}] ' if tag else ''}{recipe.description}", 118,
                                       initial_indent=f"  {name:<{width}}  ", subsequent_indent=" " * (width + 4)))
        return lines

    def recipe_names(self, names: list[str] | None = None) -> list[str]:
        """The recipes named, each once (unknown names refused before any work), or without names every recipe once,
        ``default`` first: an alias such as digit's ``cnn`` = ``default`` would only repeat the same fits."""
        if names:
            for name in names:
                self.recipe(name)
            return list(dict.fromkeys(names))
        chosen: dict[int, str] = {}
        for name in sorted(self.recipes, key=lambda n: n != "default"):  # a stable sort: the rest keep their order
            chosen.setdefault(id(self.recipes[name]), name)
        return list(chosen.values())

    def canonical(self, name: str) -> str:
        """The one name of a recipe that has several (digit's ``cnn`` is its ``default``): the name
        ``recipe_names`` lists it under, so that one recipe has one tuning study whichever name tunes it."""
        recipe = self.recipe(name)
        return next(n for n in self.recipe_names(None) if self.recipes[n] is recipe)

    def recipe(self, name: str) -> Recipe:
        if name not in self.recipes:
            known = ", ".join(sorted(self.recipes))
            raise UsageError(f"unknown recipe {name!r} for {self.name}{did_you_mean(name, self.recipes)}; choose "
                             f"one of: {known}")
        return self.recipes[name]

    def score(self, y_true: np.ndarray, raw_pred: np.ndarray) -> float:
        return self.metric(y_true, self.decode(raw_pred))

    def to_submission(self, data: Data, test_pred: np.ndarray) -> pd.DataFrame:
        """Test predictions -> the submission frame (validated and written by ``submission.write_validated``)."""
        values = self.decode(test_pred)
        if self.submission_from is not None:
            return self.submission_from(data, values)
        from common.submission import build  # the spec module stays below submission in the layers

        return build(self.submission, data.sample_submission, data.test[data.id_col], values)


def reference(comp: Competition) -> str:
    """``module`` of the package that defines this spec as ``COMPETITION``: a picklable name a worker process (spawned,
    so it shares nothing) imports to get the same spec - without the core ever importing competitions/ itself."""
    for name, module in list(sys.modules.items()):
        if getattr(module, "COMPETITION", None) is comp:
            return name
    raise UsageError(f"competition {comp.name} is not a module-level COMPETITION of an importable package; "
                     "worker processes cannot rebuild it")


def from_reference(module: str) -> Competition:
    return importlib.import_module(module).COMPETITION
