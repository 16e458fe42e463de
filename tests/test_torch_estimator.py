"""The generic torch classifier: a CNN needs only its network and how a batch is built; classes come from y
(multiclass, any labels), early stopping uses the metric passed in, and a fit is reproducible by seed."""

import io

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits

from common.blocks.torch import estimator
from common.blocks.torch.estimator import TorchClassifier
from common.metrics import ACCURACY, F1


class TinyCNN(TorchClassifier):
    """8x8 digits: two conv layers with batch norm and dropout - all this subclass says is the net and the batch."""

    def build_network(self, n_outputs: int):
        import torch.nn as nn

        return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                             nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Dropout(0.2), nn.Linear(32 * 16, n_outputs))

    def encode(self, X):
        import torch

        return torch.tensor(np.asarray(X, dtype=np.float32).reshape(-1, 1, 8, 8) / 16.0)

    def collate(self, items, rows, train):
        return (items[rows].to(self.device_),)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    return X[:1200], names[y[:1200]], X[1200:], names[y[1200:]]


def test_a_cnn_is_a_network_and_a_batch(digits):
    X, y, X_test, y_test = digits
    model = TinyCNN(epochs=4, learning_rate=3e-3, batch_size=64, early_stopping=ACCURACY, progress=False)
    model.fit(X, y)
    assert sorted(model.classes_) == sorted(set(y))  # classes taken from y, labels kept
    proba = model.predict_proba(X_test)
    assert proba.shape == (len(X_test), 10) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    assert ACCURACY(y_test, model.predict(X_test)) > 0.9
    assert model.loop_.epochs_run >= 1 and all("score" in h for h in model.loop_.history)


def test_binary_fit_is_reproducible_by_seed_and_clonable(digits):
    X, y, X_test, _ = digits
    binary = (y == "seven").astype(int)
    first = TinyCNN(epochs=2, early_stopping=F1, seed=3, progress=False).fit(X, binary)
    second = clone(first).fit(X, binary)
    assert list(first.classes_) == [0, 1]
    assert np.allclose(first.predict_proba(X_test), second.predict_proba(X_test), atol=1e-6)


@pytest.mark.parametrize(("cpu_bf16", "native", "autocast"), [(True, True, torch.bfloat16),
                                                             (True, False, torch.float32),
                                                             (False, True, torch.float32)])
def test_cpu_bf16_trains_in_bfloat16_only_where_the_cpu_has_it(digits, monkeypatch, cpu_bf16, native, autocast):
    """``cpu_bf16`` runs the network under bfloat16 autocast where the CPU has bfloat16 in hardware (emulated
    elsewhere, so slower: float32 there); the weights stay float32 and the model is as good. Off by default, so
    the other networks keep their digits."""
    monkeypatch.setattr(estimator, "native_bf16", lambda: native)
    X, y, X_test, y_test = digits
    seen: set = set()

    class Recorded(TinyCNN):
        def build_network(self, n_outputs: int):
            net = super().build_network(n_outputs)
            net[0].register_forward_hook(lambda module, inputs, output: seen.add(output.dtype))
            return net

    model = Recorded(epochs=4, learning_rate=3e-3, batch_size=64, progress=False, cpu_bf16=cpu_bf16).fit(X, y)
    assert seen == {autocast} and model.amp_ == (autocast == torch.bfloat16)
    assert {p.dtype for p in model.net_.parameters()} == {torch.float32}
    proba = model.predict_proba(X_test)
    assert proba.dtype == np.float64 and np.allclose(proba.sum(axis=1), 1, atol=1e-3)
    assert ACCURACY(y_test, model.predict(X_test)) > 0.9
    assert clone(model).get_params()["cpu_bf16"] is cpu_bf16


@pytest.mark.parametrize("damage", ["cut short", "not a checkpoint", "empty", "another torch file"])
def test_a_damaged_checkpoint_is_moved_aside_and_training_starts_again(digits, tmp_path, caplog, damage):
    """A checkpoint cut short or edited by hand must never resume a fit: the fit starts from the first epoch and ends
    where a fit that never had a checkpoint ends."""
    X, y, X_test, _ = digits
    model = TinyCNN(epochs=2, seed=1, progress=False, checkpoint_root=str(tmp_path), keep_checkpoints=True)
    first = model.fit(X, y).predict_proba(X_test)
    (checkpoint,) = tmp_path.glob("*/checkpoint.pt")
    whole = checkpoint.read_bytes()
    other = io.BytesIO()
    torch.save({"epoch": 1, "weights": torch.zeros(3)}, other)  # loads, but is not a checkpoint of a fit
    checkpoint.write_bytes({"cut short": whole[:len(whole) // 2], "not a checkpoint": b"epoch 1", "empty": b"",
                            "another torch file": other.getvalue()}[damage])
    damaged = checkpoint.read_bytes()
    again = clone(model).fit(X, y)
    assert "is unreadable" in caplog.text and again.loop_.resumed_from is None and again.loop_.epochs_run == 2
    assert np.allclose(again.predict_proba(X_test), first, atol=1e-6)
    assert checkpoint.with_name("checkpoint.pt.damaged").read_bytes() == damaged
    assert clone(model).fit(X, y).loop_.resumed_from == 1  # the checkpoint it wrote instead resumes as usual
