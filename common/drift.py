"""Adversarial validation: how different is test from train, and in which features?

A LightGBM classifier is told to tell train rows (0) from test rows (1) on the competition's label-free features,
cross-validated: an out-of-fold ROC AUC near 0.5 means test looks like train (CV should carry over), well above 0.5
means the leaderboard may disagree with CV. The features with the largest split gain are the ones that drift.

What a "row" is comes from the competition's drift view (``Competition.drift``): by default its feature frame less
id-like columns; text competitions add TF-IDF terms of the text; forecasting compares per-series summaries of the
last window with the earlier windows (common.blocks.series).
"""

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from common import paths
from common.compute import n_threads
from common.errors import UsageError
from common.io import write_json_atomic
from common.metrics import ROC_AUC

log = logging.getLogger(__name__)
TOP_FEATURES = 15
KEY_SHARE = 0.5  # a text column with more distinct values than this share of rows is a key, not a feature


@dataclass
class DriftView:
    """What adversarial validation classifies: one row per sample, ``is_test`` 1 for the side that may drift."""

    X: Any  # a DataFrame or a scipy sparse matrix
    is_test: np.ndarray
    names: list[str]
    what: str  # one line: what a row is and what the two sides are
    groups: np.ndarray | None = None  # rows that must stay in one fold (e.g. the windows of one series)
    left_out: list[str] = field(default_factory=list)  # columns not used, and why


@dataclass
class DriftResult:
    competition: str
    auc: float
    auc_std: float
    fold_aucs: list[float]
    top: list[tuple[str, float]]  # feature, share of the classifier's total gain
    what: str
    rows: dict[str, int]
    left_out: list[str]
    verdict: str
    created: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def tabular_view(train: pd.DataFrame, test: pd.DataFrame, drop: tuple[str, ...] = (),
                 rows: str = "rows") -> DriftView:
    """Train rows against test rows on the feature frames; id columns and key-like text columns (a family name, a
    ticket, a tweet's text: nearly one value per row, so they separate rows without describing them) are left out.
    ``rows``: what a row is, for the description."""
    left_out = [f"{c} (named as an id or key)" for c in drop if c in train.columns]
    frame = pd.concat([train, test], ignore_index=True).drop(columns=[c for c in drop if c in train.columns])
    for column in list(frame.columns):
        values = frame[column]
        if values.dtype.kind in "biuf":
            continue
        if values.nunique() > KEY_SHARE * len(frame):
            left_out.append(f"{column} (a key: {values.nunique()} distinct values in {len(frame)} rows)")
            frame = frame.drop(columns=column)
        else:
            frame[column] = values.astype("category")
    is_test = np.r_[np.zeros(len(train)), np.ones(len(test))].astype(int)
    return DriftView(frame, is_test, [str(c) for c in frame.columns], f"{len(train)} train {rows} against "
                     f"{len(test)} test {rows}", left_out=left_out)


def with_terms(view: DriftView, train_text: pd.Series, test_text: pd.Series, max_terms: int = 2000) -> DriftView:
    """A view plus TF-IDF terms of a text column (the ``max_terms`` most frequent words and word pairs)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(max_features=max_terms, ngram_range=(1, 2), min_df=3, sublinear_tf=True)
    terms = vectorizer.fit_transform(pd.concat([train_text, test_text], ignore_index=True).fillna(""))
    base = view.X
    numeric = base.apply(lambda c: c.cat.codes if c.dtype.name == "category" else c).to_numpy(dtype=float)
    matrix = sp.hstack([sp.csr_matrix(np.nan_to_num(numeric, nan=-1.0)), terms], format="csr")
    names = view.names + [f"word: {t}" for t in vectorizer.get_feature_names_out()]
    return DriftView(matrix, view.is_test, names, view.what + f", with {terms.shape[1]} TF-IDF terms of the text",
                     view.groups, view.left_out)


def verdict(auc: float) -> str:
    if auc < 0.55:
        return "no meaningful drift: test looks like train, CV should carry over"
    if auc < 0.70:
        return "some drift: check the top features; CV may be optimistic where they matter"
    return "strong drift: CV is unlikely to hold on test; consider folds or features that mimic it"


def adversarial(view: DriftView, competition: str, n_splits: int = 5, seed: int = 0) -> DriftResult:
    """Cross-validated train-vs-test classifier: out-of-fold ROC AUC per fold and the features with most gain."""
    from lightgbm import LGBMClassifier
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    y = view.is_test
    if view.groups is not None:
        splits = StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed).split(view.X, y, view.groups)
    else:
        splits = StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(np.zeros(len(y)), y)
    aucs, gain = [], np.zeros(len(view.names))
    for train_idx, valid_idx in splits:
        model = LGBMClassifier(n_estimators=200, learning_rate=0.05, num_leaves=15, min_child_samples=20,
                               subsample=0.8, subsample_freq=1, colsample_bytree=0.8, random_state=seed,
                               n_jobs=n_threads(), verbose=-1)
        X_train, X_valid = _rows(view.X, train_idx), _rows(view.X, valid_idx)
        model.fit(X_train, y[train_idx])
        aucs.append(ROC_AUC(y[valid_idx], np.asarray(model.predict_proba(X_valid))[:, 1]))
        gain += model.booster_.feature_importance(importance_type="gain")
    share = gain / gain.sum() if gain.sum() > 0 else gain
    order = np.argsort(-share)[:TOP_FEATURES]
    auc = float(np.mean(aucs))
    return DriftResult(competition, auc, float(np.std(aucs)), [float(a) for a in aucs],
                       [(view.names[i], float(share[i])) for i in order if share[i] > 0], view.what,
                       {"train side": int((y == 0).sum()), "test side": int((y == 1).sum())}, view.left_out,
                       verdict(auc), datetime.now(UTC).isoformat(timespec="seconds"))


def _rows(X, index: np.ndarray):
    return X.iloc[index] if isinstance(X, pd.DataFrame) else X[index]


def check(comp, data_dir: str | Path | None = None, seed: int = 0) -> tuple[DriftResult, Path]:
    """Load the competition's files and features, run adversarial validation on its drift view, save the result
    under reports/drift/ (atomically; an earlier check of the same competition is replaced, it is a report)."""
    from common import data as data_layer

    _, dataset = data_layer.load(comp, data_dir)
    X, X_test = comp.features(dataset)
    if comp.drift is not None:
        view = comp.drift(dataset, X, X_test)
    elif isinstance(X, pd.DataFrame):
        view = tabular_view(X, X_test, drop=(dataset.id_col,))
    else:
        raise UsageError(f"{comp.name} has no drift view: its features are not a table (give its Competition a "
                         "drift= function returning a common.drift.DriftView)")
    log.info("%s: adversarial validation on %s", comp.name, view.what)
    result = adversarial(view, comp.name, seed=seed)
    return result, save(result)


def result_path(competition: str) -> Path:
    return paths.home() / "reports" / "drift" / f"{competition}.json"


def save(result: DriftResult) -> Path:
    return write_json_atomic(result_path(result.competition), result.to_json())


REQUIRED: dict[str, type | tuple[type, ...]] = {"auc": (int, float), "auc_std": (int, float), "what": str,
                                               "verdict": str, "top": list}


def load(competition: str) -> dict[str, Any] | None:
    """The saved drift check of a competition, or None (missing, or damaged: skipped with a warning naming it)."""
    path = result_path(competition)
    try:
        saved = json.loads(path.read_text())
        missing = [k for k, kind in REQUIRED.items() if not isinstance(saved.get(k), kind)]
        if missing:
            raise ValueError(f"it lacks {', '.join(missing)}")
        return saved
    except FileNotFoundError:
        return None
    except (OSError, ValueError, AttributeError) as exc:
        log.warning("skipping the drift check in %s (%s); run scripts/drift.py %s again", path, exc, competition)
        return None
