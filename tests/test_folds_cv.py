"""Folds persisted and reused; cross_validate fits every fold's preprocessing on that fold only."""

import os

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import PredefinedSplit, ShuffleSplit
from sklearn.pipeline import make_pipeline

from common.competition import Data
from common.cv import corrected_std_error, cross_validate
from common.errors import DataError, UsageError
from common.metrics import ACCURACY
from common.splitters import Fold, Folds, RowFolds, Window, row_folds


def make_data(n=200, seed=0) -> Data:
    rng = np.random.default_rng(seed)
    train = pd.DataFrame({"id": np.arange(n), "x": rng.normal(size=n), "g": rng.integers(0, 20, n)})
    train["y"] = (train["x"] + rng.normal(scale=0.5, size=n) > 0).astype(int)
    return Data(train=train, test=train.head(10).drop(columns="y"), sample_submission=pd.DataFrame(), target="y",
                id_col="id")


def test_stratified_folds_are_persisted_and_reused(kit_home):
    data = make_data()
    first = RowFolds("stratified").split(data, 5, "toy")
    assert first.path.is_file() and first.path.is_relative_to(kit_home)
    assert sorted(np.bincount(first.fold)) == [40] * 5
    # class balance kept in every fold
    for _, valid in first.pairs():
        assert abs(data.y[valid].mean() - data.y.mean()) < 0.05
    again = RowFolds("stratified").split(data, 5, "toy")
    assert again.path == first.path and np.array_equal(again.fold, first.fold)
    # another seed is another assignment: it never shares the file
    other = RowFolds("stratified", seed=999).split(data, 5, "toy")
    assert other.path != first.path and other.hash != first.hash
    assert first.path.name == "stratified-k5-seed42.csv" and other.path.name == "stratified-k5-seed999.csv"


def test_folds_made_for_other_data_are_refused(kit_home):
    RowFolds().split(make_data(200), 5, "toy")
    with pytest.raises(DataError, match="the train data changed since"):
        RowFolds().split(make_data(150), 5, "toy")


def test_group_folds_keep_groups_together(kit_home):
    data = make_data()
    folds = RowFolds("group", groups=lambda d: d.train["g"].to_numpy(), grouping="g").split(data, 5, "toy-groups")
    assert folds.path.name == "group-k5-seed42-by-g.csv"
    for train_idx, valid_idx in folds.pairs():
        assert not set(data.train["g"].iloc[train_idx]) & set(data.train["g"].iloc[valid_idx])


def test_a_users_own_splitter_plugs_in_and_is_persisted_under_its_label(kit_home):
    """Any object with scikit-learn's split(X, y, groups) works, made by a factory (n_splits, seed) -> splitter."""
    data = make_data()

    def every_third(n_splits: int, seed: int) -> PredefinedSplit:
        return PredefinedSplit((np.arange(len(data.train)) + seed) % n_splits)

    mine = RowFolds(every_third, label="every-third")
    folds = mine.split(data, 3, "toy")
    assert folds.path.name == "every-third-k3-seed42.csv" and folds.spec["kind"] == "every-third"
    assert np.array_equal(folds.fold, (np.arange(200) + 42) % 3)
    assert np.array_equal(mine.split(data, 3, "toy").fold, folds.fold)  # read back, not made again
    result = cross_validate(LogisticRegression, data.train[["x"]], data.y, folds, lambda y, p: ACCURACY(y, p >= 0.5),
                            progress=False)
    assert len(result.fold_scores) == 3 and result.mean > 0.7
    with pytest.raises(ValueError, match="no fold to score"):
        cross_validate(LogisticRegression, data.train[["x"]], data.y, folds, lambda y, p: ACCURACY(y, p >= 0.5),
                       progress=False, scored=[])


def test_cross_validate_takes_a_scikit_learn_splitters_pairs_as_they_come():
    """nyaggle's contract: the pure loop needs no persisted folds; KFold(...).split(X) plugs straight in, and each
    fold's out-of-fold rows are a model fitted on that fold's training rows only."""
    from sklearn.model_selection import KFold

    data = make_data()
    X, score = data.train[["x"]], (lambda y, p: ACCURACY(y, p >= 0.5))
    pairs = list(KFold(4, shuffle=True, random_state=0).split(X))
    plain = cross_validate(LogisticRegression, X, data.y, iter(pairs), score, X_test=data.test[["x"]], progress=False)
    assert len(plain.fold_scores) == 4 and not np.isnan(plain.oof).any() and plain.test_pred.shape == (10,)
    for k, (train, valid) in enumerate(pairs):
        model = LogisticRegression().fit(X.iloc[train], data.y[train])
        assert np.allclose(plain.oof[valid], model.predict_proba(X.iloc[valid])[:, 1])
        assert plain.fold_scores[k] == pytest.approx(score(data.y[valid], plain.oof[valid]))


@pytest.mark.parametrize("slow_enough", [True, False])
def test_without_a_bar_each_long_fold_is_logged_as_it_ends(monkeypatch, caplog, slow_enough):
    """A run written to a file or CI shows no progress bar; folds of minutes get a line each, with the time the rest
    should take. Quick folds stay quiet (the run lists every fold's score at its end)."""
    import io
    import logging

    from sklearn.model_selection import KFold

    from common import cv

    monkeypatch.setattr("sys.stderr", io.StringIO())  # not a terminal: tqdm shows no bar
    if slow_enough:
        monkeypatch.setattr(cv, "LOG_FOLDS_FROM_SECONDS", 0.0)
    data = make_data()
    X, score = data.train[["x"]], (lambda y, p: ACCURACY(y, p >= 0.5))
    pairs = list(KFold(4).split(X))
    with caplog.at_level(logging.INFO, logger="common.cv"):
        result = cross_validate(LogisticRegression, X, data.y, pairs, score)
        cross_validate(LogisticRegression, X, data.y, pairs, score, progress=False)  # --quiet: nothing
    lines = [r.getMessage() for r in caplog.records if r.name == "common.cv"]
    if not slow_enough:
        assert lines == []
        return
    assert len(lines) == 4
    for k, line in enumerate(lines):
        assert line.startswith(f"fold {k} done ({k + 1} of 4): score {result.fold_scores[k]:.5f} in ")
    assert "; 3 more, about " in lines[0] and "more" not in lines[-1]


def test_a_splitter_that_leaves_rows_unvalidated_is_refused(kit_home):
    data = make_data()
    shuffle = RowFolds(lambda n, seed: ShuffleSplit(n, test_size=0.1, random_state=seed), label="shuffle")
    with pytest.raises(UsageError, match=r"splitter shuffle left \d+ rows in no validation fold"):
        shuffle.split(data, 3, "toy")
    assert not shuffle.path(3, "toy").exists()


class RecordingScaler(TransformerMixin, BaseEstimator):
    """Remembers which rows it was fitted on, to prove no validation row reaches preprocessing."""

    seen: list[set] = []

    def fit(self, X, y=None):
        RecordingScaler.seen.append(set(X.index))
        self.mean_ = X.mean()
        return self

    def transform(self, X):
        return X - self.mean_


def test_cross_validate_fits_each_fold_on_its_own_rows(kit_home):
    data = make_data()
    folds = RowFolds().split(data, 4, "toy")
    RecordingScaler.seen = []
    X = data.train[["x"]]
    result = cross_validate(lambda: make_pipeline(RecordingScaler(), LogisticRegression()), X, data.y, folds,
                            lambda y, p: ACCURACY(y, (p >= 0.5).astype(int)), X_test=data.test[["x"]],
                            progress=False)
    assert len(RecordingScaler.seen) == 4
    for seen, (train_idx, valid_idx) in zip(RecordingScaler.seen, folds.pairs(), strict=True):
        assert seen == set(train_idx)
        assert not seen & set(valid_idx)
    assert not np.isnan(result.oof).any()
    assert len(result.fold_scores) == 4 and result.mean > 0.7
    assert result.test_pred.shape == (10,)
    # test predictions are the average of the fold models' predictions
    manual = np.mean([make_pipeline(RecordingScaler(), LogisticRegression()).fit(X.iloc[t], data.y[t])
                      .predict_proba(data.test[["x"]])[:, 1] for t, _ in folds.pairs()], axis=0)
    assert np.allclose(result.test_pred, manual)


def test_on_fold_callback_can_stop_early(kit_home):
    data = make_data()
    folds = RowFolds().split(data, 5, "toy")
    seen = []

    class Stop(Exception):
        pass

    def on_fold(k, score, scores):
        seen.append((k, score, len(scores)))
        if k == 1:
            raise Stop

    with pytest.raises(Stop):
        cross_validate(LogisticRegression, data.train[["x"]], data.y, folds, lambda y, p: ACCURACY(y, p >= 0.5),
                       on_fold=on_fold, progress=False)
    assert [k for k, _, _ in seen] == [0, 1]


def test_an_interrupted_cv_resumes_from_its_finished_folds_and_ends_as_an_uninterrupted_one(kit_home):
    """Folds finished before an interruption are taken from the store; only the others are fitted again, and the
    result (out-of-fold, test prediction from the refit model, scores) is the uninterrupted one."""
    from common.resume import FoldFiles

    data = make_data()
    folds = RowFolds().split(data, 5, "toy")
    X, X_test = data.train[["x", "g"]], data.test[["x", "g"]]
    fits = []

    def make_model():
        fits.append(1)
        return LogisticRegression(C=0.3)

    def score(y, p):
        return ACCURACY(y, p >= 0.5)

    whole = cross_validate(make_model, X, data.y, folds, score, X_test, refit=True, progress=False)

    class Stop(Exception):
        pass

    def stop_after_third(k, score, scores):
        if k == 2:
            raise Stop

    store = FoldFiles(kit_home / "resume" / "toy", "toy")
    with pytest.raises(Stop):
        cross_validate(make_model, X, data.y, folds, score, X_test, refit=True, progress=False, store=store,
                       on_fold=stop_after_third)
    (kit_home / "resume" / "toy" / "fold-1.pkl").write_bytes(b"damaged")  # a bad file costs its fold again
    fits.clear()
    resumed = cross_validate(make_model, X, data.y, folds, score, X_test, refit=True, progress=False, store=store)
    assert len(fits) == 4  # folds 1, 3, 4 and the refit model
    assert resumed.fold_scores == whole.fold_scores
    assert np.array_equal(resumed.oof, whole.oof) and np.array_equal(resumed.test_pred, whole.test_pred)
    fits.clear()
    again = cross_validate(make_model, X, data.y, folds, score, X_test, refit=True, progress=False, store=store)
    assert not fits and np.array_equal(again.test_pred, whole.test_pred)


def test_an_interruption_says_how_many_finished_folds_wait_and_a_written_run_removes_them(kit_home, capsys):
    from common.cli import handle_errors
    from common.cv import FoldOutcome
    from common.resume import Resume

    resume = Resume("toy")
    store = resume.store("toy/x", recipe="x", params={"C": 1.0})
    store.save(0, FoldOutcome(np.zeros(3), None, 0.5, 1.0))
    assert resume.store("toy/x", recipe="x", params={"C": 1.0}).load(0).score == 0.5
    assert resume.store("toy/x", recipe="x", params={"C": 2.0}).load(0) is None  # other params: not reused

    def interrupted():
        raise KeyboardInterrupt

    assert handle_errors(interrupted) == 130
    assert "1 finished fold(s) kept under resume/: the same command goes on from them" in capsys.readouterr().err
    resume.finish()
    assert not (kit_home / "resume").exists()
    assert handle_errors(interrupted) == 130
    assert "kept under resume" not in capsys.readouterr().err


def test_a_failed_run_keeps_its_finished_folds_and_leaves_nothing_else(kit_home):
    """A run stopped before its first fold left a folder holding only the mark of a process that is gone, never
    taken by a run of other inputs: now only folders with finished folds stay, without marks."""
    from common.cv import FoldOutcome
    from common.resume import Resume, kept_folds

    root = kit_home / "resume" / "toy"
    with pytest.raises(KeyboardInterrupt), Resume("toy") as resume:
        resume.store("toy/x", recipe="x", params={"C": 1.0})
        raise KeyboardInterrupt
    assert not (kit_home / "resume").exists()
    with pytest.raises(KeyboardInterrupt), Resume("toy") as resume:
        resume.store("toy/x", recipe="x", params={"C": 1.0}).save(0, FoldOutcome(np.zeros(3), None, 0.5, 1.0))
        resume.store("toy/y", recipe="y", params={})  # a stack's second member, not reached
        raise KeyboardInterrupt
    [kept] = root.iterdir()
    assert [f.name for f in kept.iterdir()] == ["fold-0.pkl"] and kept_folds() == 1  # what the line promises
    with Resume("toy") as again:  # the same command: takes the fold, and the run is written
        assert again.store("toy/x", recipe="x", params={"C": 1.0}).load(0).score == 0.5
    assert not (kit_home / "resume").exists()


def _marked_by(folder, pid: int) -> None:
    from common.io import OWNER, host_tag

    folder.mkdir(parents=True, exist_ok=True)
    (folder / f".tmp-{pid}-{host_tag()}-{OWNER}").touch()


def test_folds_of_a_live_run_survive_a_run_of_edited_code_and_a_finishing_twin(kit_home):
    """Edit the code while a long run goes and start another: the running one's kept folds stay, since its process
    lives; once it is gone they are removed as before. A run with the same inputs finishing beside a live twin
    leaves their shared folder to the twin."""
    import subprocess
    import sys

    from common.cv import FoldOutcome
    from common.resume import Resume

    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    try:
        root = kit_home / "resume" / "toy"
        running = root / "0123456789ab-0000000000000000"  # a live run of other (older) code
        (running / "fold-0.pkl").parent.mkdir(parents=True)
        (running / "fold-0.pkl").write_bytes(b"kept")
        _marked_by(running, alive.pid)
        killed = root / "0123456789ab-1111111111111111"  # a run of that code killed with kill -9
        _marked_by(killed, gone.pid)
        first = Resume("toy")
        assert running.is_dir() and (running / "fold-0.pkl").read_bytes() == b"kept"
        assert not killed.exists()

        store = first.store("toy/x", recipe="x", params={"C": 1.0})
        store.save(0, FoldOutcome(np.zeros(3), None, 0.5, 1.0))
        _marked_by(store.folder, alive.pid)  # a twin with the same inputs, still running
        first.finish()
        assert (store.folder / "fold-0.pkl").is_file()  # the twin's folds stay
        assert not [m for m in store.folder.iterdir() if str(os.getpid()) in m.name]  # this run's marker went
    finally:
        alive.kill()
        alive.wait()
    Resume("toy").finish()  # both runs gone now: the next run of this code clears the other code's folder
    assert not running.exists()


def test_a_run_removes_folds_kept_by_other_code_and_reuses_its_own(kit_home):
    from common.cv import FoldOutcome
    from common.resume import Resume

    first = Resume("toy")
    first.store("toy/x", recipe="x", params={"C": 1.0}).save(0, FoldOutcome(np.zeros(3), None, 0.5, 1.0))
    older = kit_home / "resume" / "toy" / "0123456789ab-0000000000000000"  # what other code left
    older.mkdir()
    (older / "fold-0.pkl").write_bytes(b"old")
    second = Resume("toy")  # a later run of the same competition, interrupted one's folds still waiting
    assert not older.exists()
    assert second.store("toy/x", recipe="x", params={"C": 1.0}).load(0).score == 0.5
    first.finish()
    second.finish()


def test_the_paired_standard_error_counts_the_training_rows_folds_share():
    """Nadeau & Bengio's correction: var(d) x (1/n + n_test/n_train). Five equal row folds validate a quarter as many
    rows as they train on; a backtest window forecasts its days from the days before it."""
    fold = np.arange(100) % 5
    assert row_folds(fold).test_train_ratio() == pytest.approx(0.25)
    windows = Folds((Fold(Window(100, 100, 160, fit=True), Window(100, 100, 160)),
                     Fold(Window(160, 160, 220, fit=True), Window(160, 160, 220))), None, "h")
    assert windows.test_train_ratio() == pytest.approx(60 / 130)
    d = np.array([1.0, 2.0, 3.0, 4.0])
    assert corrected_std_error(d, 0.25) == pytest.approx(np.sqrt(np.var(d, ddof=1) * (1 / 4 + 0.25)))
    assert corrected_std_error(d, 0.25) > d.std(ddof=1) / np.sqrt(4)  # wider than the naive error
    assert corrected_std_error(d, 0.0) == pytest.approx(d.std(ddof=1) / np.sqrt(4))  # disjoint training sets: naive
    assert np.isnan(corrected_std_error(d[:1], 0.25))
