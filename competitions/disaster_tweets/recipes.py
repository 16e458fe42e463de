"""Disaster Tweets recipes. Every classifier picks its F1 threshold on its own training rows (common.thresholds),
so the competition's 0.5 decode applies that threshold and the CV never sees the scored fold while choosing it."""

from typing import Any

from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from common.competition import Recipe
from common.embeddings import Embedder
from common.hf_models import DEFAULT_MODEL
from common.thresholds import F1Threshold


def make_tfidf(params: dict[str, Any], seed: int) -> F1Threshold:
    parts = [("words", TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=50_000),
              "clean_text"),
             ("keyword", OneHotEncoder(handle_unknown="ignore"), ["keyword"])]
    if params.get("chars", True):
        parts.append(("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=3, sublinear_tf=True,
                                               max_features=params.get("max_char_features", 100_000)), "clean_text"))
    model = LogisticRegression(C=params["C"], max_iter=3000, class_weight="balanced")
    return F1Threshold(Pipeline([("features", ColumnTransformer(parts)), ("model", model)]), random_state=seed)


def make_embed(params: dict[str, Any], seed: int) -> F1Threshold:
    features = ColumnTransformer([
        ("embedding", Embedder("model_text", params.get("model", DEFAULT_MODEL)), ["model_text"]),
        ("keyword", OneHotEncoder(handle_unknown="ignore", min_frequency=5), ["keyword"]),
    ])
    model = LogisticRegression(C=params["C"], max_iter=3000, class_weight="balanced")
    return F1Threshold(Pipeline([("features", features), ("model", model)]), random_state=seed)


def make_finetune(params: dict[str, Any], seed: int):
    from common.finetune import TransformerClassifier, default_checkpoint_root

    return TransformerClassifier(text_column="model_text", seed=seed,
                                 checkpoint_root=params.get("checkpoint_root") or default_checkpoint_root(
                                     "disaster-tweets"),
                                 **{k: v for k, v in params.items() if k != "checkpoint_root"})


def make_meta(params: dict[str, Any], seed: int) -> F1Threshold:
    """Logistic regression on the members' (threshold-shifted) probabilities, with its own F1 threshold."""
    return F1Threshold(LogisticRegression(C=params.get("C", 1.0)), random_state=seed)


def tfidf_space(trial) -> dict[str, Any]:
    return {"C": trial.suggest_float("C", 0.05, 50.0, log=True),
            "max_char_features": trial.suggest_int("max_char_features", 20_000, 300_000, log=True)}


def embed_space(trial) -> dict[str, Any]:
    return {"C": trial.suggest_float("C", 0.01, 100.0, log=True)}


def finetune_space(trial) -> dict[str, Any]:
    return {"learning_rate": trial.suggest_float("learning_rate", 1e-5, 2e-4, log=True),
            "epochs": trial.suggest_int("epochs", 1, 4),
            "batch_size": trial.suggest_categorical("batch_size", [16, 32, 64])}


TFIDF = {"C": 3.0, "max_char_features": 100_000}
EMBED = {"C": 1.0, "model": DEFAULT_MODEL}
FINETUNE = {"model": DEFAULT_MODEL, "epochs": 3, "learning_rate": 5e-5, "batch_size": 32, "max_length": 64,
            "warmup": 0.1, "patience": 1}

RECIPES: dict[str, Recipe] = {
    "default": Recipe("blend of tfidf and embed: logistic regression on their out-of-fold probabilities, F1 "
                      "threshold chosen on out-of-fold rows only", make_meta, {"meta": {"C": 1.0}},
                      members=("tfidf", "embed")),
    "tfidf": Recipe("word 1-2-gram + char 2-5-gram TF-IDF and keyword, logistic regression", make_tfidf, TFIDF,
                    tfidf_space),
    "embed": Recipe("sentence embeddings of the pretrained backbone (cached) + keyword, logistic regression",
                    make_embed, EMBED, embed_space),
    "finetune": Recipe("fine-tuned transformer backbone (torch; GPU if present)", make_finetune, FINETUNE,
                       finetune_space),
    "fast": Recipe("word TF-IDF logistic regression, for tests", make_tfidf, {"C": 3.0, "chars": False}),
}
