"""Digit Recognizer: the real files end to end with the fast CNN, one held-out fold scored and recorded, bad input
named by file, column and row, and a killed CNN fit that resumes where an uninterrupted one would end."""

import io
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch

import competitions
from common import data, ensemble_runs, importance, runner
from common.blocks.torch import estimator
from common.errors import DataError
from common.metrics import ACCURACY
from competitions.digit_recognizer.recipes import DigitCNN

from conftest import ROOT, kill_at_first_checkpoint, run_script

DR = competitions.get("digit-recognizer")


@pytest.fixture(scope="module")
def small_tables(shared_kaggle):
    """The first rows of the real files (a small replica for the bad-input tests)."""
    with zipfile.ZipFile(shared_kaggle / DR.slug / f"{DR.slug}.zip") as zf:
        train = pd.read_csv(io.BytesIO(zf.read("train.csv")), nrows=300)
        test = pd.read_csv(io.BytesIO(zf.read("test.csv")), nrows=200)
    return train, test


def write_mirror(root, train: pd.DataFrame, test: pd.DataFrame, raw_test: str | None = None):
    folder = root / DR.slug
    folder.mkdir(parents=True, exist_ok=True)
    train.to_csv(folder / "train.csv", index=False)
    if raw_test is None:
        test.to_csv(folder / "test.csv", index=False)
    else:
        (folder / "test.csv").write_text(raw_test)
    pd.DataFrame({"ImageId": range(1, len(test) + 1), "Label": 0}).to_csv(folder / "sample_submission.csv",
                                                                          index=False)
    return root


def test_fast_cnn_on_the_real_files_scores_one_held_out_fold(data_dir, kit_home, monkeypatch):
    # The importance budget is a share of the fit time, so on a busy machine it may cover 15 of the 16 blocks: here
    # every block is measured (the budget itself is tested in test_drift_importance.py).
    monkeypatch.setattr(importance, "PERMUTATION_FLOOR_S", 1e9)
    monkeypatch.setattr(importance, "PERMUTATION_CAP_S", 1e9)
    record, folder = runner.train(DR, "fast", progress=False)
    assert record.cv["folds_scored"] == 1 and record.folds["n_splits"] == 5
    assert record.cv["mean"] > 0.5  # 60 steps of a narrow CNN already learn most digits
    oof = pd.read_parquet(folder / "oof.parquet")
    scored = oof["oof_0"].notna()
    assert scored.sum() == (oof["fold"] == 0).sum() == 8400  # exactly the held-out fold, never trained on
    sub = pd.read_csv(kit_home / "submissions" / "digit-recognizer.csv")
    assert list(sub.columns) == ["ImageId", "Label"] and list(sub["ImageId"]) == list(range(1, 28001))
    assert sub["Label"].between(0, 9).all() and sub["Label"].nunique() == 10
    # what the CNN relied on: 16 pixel blocks shuffled one at a time; the centre carries the digit, corners are blank
    imp = record.importance
    assert imp["kind"] == "permutation" and len(imp["features"]) == 16
    centre = imp["features"]["pixels rows 7-13 cols 7-13"]
    corners = [imp["features"][f"pixels rows {r} cols {c}"] for r in ("0-6", "21-27") for c in ("0-6", "21-27")]
    assert centre > 0.05 and max(abs(v) for v in corners) < centre / 5


def test_the_seed_ensemble_averages_cnns_that_differ_only_by_seed(small_tables, tmp_path, kit_home):
    train, test = small_tables
    mirror = write_mirror(tmp_path / "mirror", train, test)
    tiny = {"models": 2, "width": 8, "epochs": 1, "tta_shifts": 0}
    record, folder = runner.train(DR, "ensemble", n_folds=3, data_dir=mirror, params=tiny, progress=False)
    assert record.params["models"] == 2 and record.cv["folds_scored"] == 1
    model = DR.recipe("ensemble").make_model({**DR.recipe("ensemble").params, **tiny}, 5)
    X, _ = DR.features(data.load(DR, mirror)[1])
    y = train["label"].to_numpy()
    model.fit(X, y)
    first, second = (m.predict_proba(X[:50]) for m in model.models_)
    assert [m.seed for m in model.models_] == [5, 6] and not np.allclose(first, second)
    assert np.allclose(model.predict_proba(X[:50]), (first + second) / 2)
    assert not any((kit_home / "runs" / "digit-recognizer" / ".checkpoints").glob("*"))  # each seed's removed
    with pytest.raises(ValueError, match="models must be 1 or more"):
        DR.recipe("ensemble").make_model({**DR.recipe("ensemble").params, "models": 0}, 0)


def test_folds_scored_option_runs_more_folds(small_tables, tmp_path, kit_home):
    train, test = small_tables
    mirror = write_mirror(tmp_path / "mirror", train, test)
    result = run_script("train.py", "digit-recognizer", "--recipe", "fast", "--folds", "3", "--folds-scored", "2",
                        "--data-dir", str(mirror), "--quiet", env={**os.environ, "KIT_HOME": str(kit_home)})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "over 2 of 3 folds" in result.stdout
    bad = run_script("train.py", "digit-recognizer", "--folds", "3", "--folds-scored", "4",
                     env={**os.environ, "KIT_HOME": str(kit_home)})
    assert bad.returncode == 2 and "more than --folds 3" in bad.stderr


@pytest.mark.parametrize(("damage", "message"), [
    (lambda tr, te: (tr.assign(pixel300=tr["pixel300"].where(tr.index != 2, 300)), te),
     r"train\.csv: pixel300 must be in 0\.\.255; row 3 "),
    (lambda tr, te: (tr.assign(pixel5=tr["pixel5"].where(tr.index != 0, -1)), te),
     r"train\.csv: pixel5 must be in 0\.\.255; row 1 "),
    (lambda tr, te: (tr, te.assign(pixel7=te["pixel7"].where(te.index != 4, np.nan))),
     r"test\.csv: pixel7 must be a whole number on every row \(no gaps\); row 5 "),
    (lambda tr, te: (tr.drop(columns=["pixel783"]), te), r"train\.csv is missing column\(s\) pixel783"),
    (lambda tr, te: (tr, te.astype({"pixel9": object}).assign(pixel9=te["pixel9"].where(te.index != 3, "--"))),
     r"test\.csv: pixel9 must be numeric; row 4 .* the first holds '--'"),  # was a traceback from read_csv's dtype
    (lambda tr, te: (tr.assign(label=tr["label"].where(tr.index != 1, 10)), te),
     r"train\.csv: label must be in 0\.\.9; row 2 "),
    (lambda tr, te: (tr, te.copy().assign(label=0)), r"test\.csv has unexpected column\(s\) label \(test\.csv must not "
                                              r"have a label column\)"),
])
def test_bad_input_is_one_line_naming_file_column_and_row(small_tables, tmp_path, damage, message):
    train, test = damage(*small_tables)
    mirror = write_mirror(tmp_path / "mirror", train, test)
    with pytest.raises(DataError, match=message):
        data.load(DR, mirror)


def test_empty_test_file_is_one_line_and_nothing_is_written(small_tables, tmp_path, kit_home):
    train, test = small_tables
    mirror = write_mirror(tmp_path / "mirror", train, test, raw_test="")
    result = run_script("train.py", "digit-recognizer", "--recipe", "fast", "--data-dir", str(mirror),
                        env={**os.environ, "KIT_HOME": str(kit_home)})
    assert result.returncode == 3 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: test.csv is empty")
    assert not (kit_home / "runs").exists() and not (kit_home / "submissions").exists()


CNN_SCRIPT = """
import sys, json, numpy as np, pandas as pd
from competitions.digit_recognizer.recipes import DigitCNN
train = pd.read_csv(sys.argv[1])
X, y = train.drop(columns="label").to_numpy(np.uint8), train["label"].to_numpy()
clf = DigitCNN(width=8, epochs=3, batch_size=32, checkpoint_root=sys.argv[2], keep_checkpoints=True, seed=0,
               tta_shifts=1, progress=False)
clf.fit(X, y)
print(json.dumps({"proba": clf.predict_proba(X[:16]).tolist(), "resumed": clf.loop_.resumed_from,
                  "epochs": [h["epoch"] for h in clf.loop_.history]}))
"""


@pytest.mark.parametrize("native", [True, False])
def test_the_cnn_in_bfloat16_on_a_cpu_runs_channels_last(small_tables, monkeypatch, native):
    """oneDNN's bfloat16 convolutions want channels last; float32 keeps the default layout, and with it its digits."""
    monkeypatch.setattr(estimator, "native_bf16", lambda: native)
    train, test = small_tables
    X, y = train.drop(columns="label").to_numpy(), train["label"].to_numpy()
    model = DigitCNN(width=4, epochs=1, max_steps_per_epoch=3, tta_shifts=1, cpu_bf16=True, progress=False).fit(X, y)
    layout = torch.channels_last if native else torch.contiguous_format
    assert model.amp_ is native and model.net_[0].weight.is_contiguous(memory_format=layout)
    assert model.collate(model.encode(X), np.arange(8), train=True)[0].is_contiguous(memory_format=layout)
    proba = model.predict_proba(test.to_numpy())
    assert proba.shape == (len(test), len(model.classes_)) and np.isfinite(proba).all()


def test_a_killed_cnn_fit_resumes_and_ends_where_an_uninterrupted_one_would(small_tables, tmp_path):
    train, _ = small_tables
    csv = tmp_path / "train.csv"
    train.to_csv(csv, index=False)
    env = {**os.environ, "OMP_NUM_THREADS": "2"}

    def run(root):
        return subprocess.run([sys.executable, "-c", CNN_SCRIPT, str(csv), str(root)], capture_output=True,
                              text=True, env=env, cwd=ROOT, timeout=600)

    clean = run(tmp_path / "uninterrupted")
    assert clean.returncode == 0, clean.stderr[-2000:]
    expected = json.loads(clean.stdout.strip().splitlines()[-1])
    assert expected["resumed"] is None and expected["epochs"] == [0, 1, 2]

    root = tmp_path / "killed"
    kill_at_first_checkpoint(CNN_SCRIPT, [str(csv), str(root)], root, env)
    resumed = run(root)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    result = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert result["resumed"] is not None and result["epochs"] == [0, 1, 2]
    assert np.allclose(result["proba"], expected["proba"], atol=1e-5)  # augmentation RNG restored too


def test_torchrun_with_two_cpu_processes_makes_one_normal_run(small_tables, tmp_path, kit_home):
    """DistributedDataParallel over gloo: each process trains on its shard of every batch, only rank 0 writes."""
    from pathlib import Path

    train, test = small_tables
    mirror = write_mirror(tmp_path / "mirror", train, test)
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {**os.environ, "KIT_HOME": str(kit_home), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node=2", str(ROOT / "scripts" / "train.py"),
                             "digit-recognizer", "--recipe", "fast", "--folds", "3", "--data-dir", str(mirror),
                             "--quiet"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("digit-recognizer fast: CV accuracy") == 1  # rank 0 alone reports
    runs = [p for p in (kit_home / "runs" / "digit-recognizer").iterdir() if (p / "run.json").is_file()]
    assert len(runs) == 1 and not [p for p in runs[0].parent.iterdir() if p.name.startswith(".tmp-")]
    record = json.loads((runs[0] / "run.json").read_text())
    assert record["processes"] == 2 and record["cv"]["folds_scored"] == 1
    assert "data-parallel training on 2 processes (gloo), this is rank 0" in (runs[0] / "log.txt").read_text()
    assert (kit_home / "submissions" / "digit-recognizer.csv").is_file()


def test_report_shows_the_confusion_matrix_and_the_most_confidently_wrong_digits(small_tables, tmp_path, kit_home):
    train, test = small_tables
    mirror = write_mirror(tmp_path / "mirror", train, test)
    env = {**os.environ, "KIT_HOME": str(kit_home), "KAGGLE_DATA_DIR": str(mirror)}
    trained = run_script("train.py", "digit-recognizer", "--recipe", "fast", "--folds", "3", "--quiet", env=env)
    assert trained.returncode == 0, trained.stderr[-2000:]
    result = run_script("leaderboard.py", "digit-recognizer", env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    page = (kit_home / "reports" / "leaderboard.html").read_text()
    assert "Out-of-fold confusion matrix" in page and "Most confidently wrong held-out digits" in page
    assert "Feature importance of the best run that has it" in page and "pixels rows 7-13 cols 7-13" in page
    assert page.count("data:image/png;base64,") == 4  # fold spread + the two pictures + the pixel blocks' importance


def test_most_confidently_wrong_ranks_by_confidence():
    from competitions.digit_recognizer.figures import confusion, most_confidently_wrong

    proba = np.full((4, 10), 0.0)
    proba[0, 3], proba[1, 5], proba[2, 7], proba[3] = 0.9, 0.6, 1.0, np.nan  # row 3: not in a scored fold
    oof = pd.DataFrame({"target": [3, 1, 2, 4], **{f"oof_{k}": proba[:, k] for k in range(10)}})
    wrong = most_confidently_wrong(oof)
    assert list(wrong["row"]) == [2, 1] and list(wrong["predicted"]) == [7, 5]
    counts, truth, _ = confusion(oof)
    assert counts.sum() == 3 and counts[3, 3] == 1 and counts[2, 7] == 1


def test_runs_scored_on_every_fold_blend_their_class_probabilities(small_tables, tmp_path, kit_home):
    """Issue 15's multiclass case end to end: the members' out-of-fold probabilities (one column per class) are read
    back, blended per fold with weights chosen on the other folds, and the blend's labels are the submission."""
    train, test = small_tables
    mirror = write_mirror(tmp_path / "mirror", train, test)
    for recipe in ("logreg", "knn"):
        runner.train(DR, recipe, n_folds=3, data_dir=mirror, folds_scored=3, progress=False)
    record, skipped, best = ensemble_runs.build(DR, data_dir=mirror)
    assert not skipped and record.ensemble["space"] == "identity" and record.cv["folds_scored"] == 3
    oof = pd.read_parquet(record.path / "oof.parquet")
    probs = oof[[f"oof_{c}" for c in range(10)]].to_numpy()
    assert np.allclose(probs.sum(axis=1), 1) and (probs >= 0).all()
    for k in range(3):  # each fold scored by the labels of its own blend
        rows = (oof["fold"] == k).to_numpy()
        assert record.cv["fold_scores"][k] == pytest.approx(ACCURACY(oof.loc[rows, "target"],
                                                                     probs[rows].argmax(axis=1)))
    sub = pd.read_csv(kit_home / "submissions" / "digit-recognizer.csv")
    assert list(sub["ImageId"]) == list(range(1, 201)) and sub["Label"].between(0, 9).all()
    assert record.cv["mean"] >= best["cv_mean"] - 0.05  # a blend of two on 300 images: not far below the better
