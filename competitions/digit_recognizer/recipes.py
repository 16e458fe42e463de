"""Digit Recognizer recipes: a compact CNN on the common torch classifier (augmented on the fly, label smoothing,
warm-up + linear decay, test-time augmentation), a seed ensemble of it, and quick pixel baselines.

The CNN scores one whole persisted fold it never trained on (``folds_scored``: the 20-minute CPU budget holds one
fit, not five); ``--folds-scored all`` runs the full k-fold CV.
"""

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from common.blocks.torch.estimator import TorchClassifier
from common.competition import Recipe
from common.constraints import POSITIVE_INT, Checked, HasMethods, at_least, between
from common.metrics import ACCURACY

SIDE = 28


class DigitCNN(TorchClassifier):
    """Three conv blocks (batch norm, ReLU, max-pool, dropout) and a small head; images are augmented per batch with
    a random affine (rotation, scale, shift) and predicted as the average over a few shifted views."""

    _parameter_constraints: dict = {
        **TorchClassifier._parameter_constraints, "width": POSITIVE_INT, "dropout": between(0, 1, "left"),
        "rotation": between(0, 180), "scale": between(0, 1, "left"), "shift": between(0, 1, "left"),
        "tta_shifts": at_least(0, SIDE // 2 - 1),
    }

    def __init__(self, width: int = 32, dropout: float = 0.25, rotation: float = 10.0, scale: float = 0.1,
                 shift: float = 0.1, tta_shifts: int = 1, epochs: int = 15, learning_rate: float = 3e-3,
                 batch_size: int = 128, warmup: float = 0.2, weight_decay: float = 1e-4, patience: int = 100,
                 valid_fraction: float = 0.0, label_smoothing: float = 0.1, early_stopping=ACCURACY, seed: int = 0,
                 device: str | None = None, checkpoint_root: str | None = None,
                 max_steps_per_epoch: int | None = None, keep_checkpoints: bool = False, progress: bool = True,
                 cpu_bf16: bool = False):
        super().__init__(epochs=epochs, learning_rate=learning_rate, batch_size=batch_size, warmup=warmup,
                         weight_decay=weight_decay, patience=patience, valid_fraction=valid_fraction,
                         label_smoothing=label_smoothing, early_stopping=early_stopping, seed=seed, device=device,
                         checkpoint_root=checkpoint_root, max_steps_per_epoch=max_steps_per_epoch,
                         keep_checkpoints=keep_checkpoints, progress=progress, cpu_bf16=cpu_bf16)
        self.width = width
        self.dropout = dropout
        self.rotation = rotation
        self.scale = scale
        self.shift = shift
        self.tta_shifts = tta_shifts

    def build_network(self, n_outputs: int):
        import torch.nn as nn

        w = self.width

        def block(c_in: int, c_out: int) -> list:
            return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                    nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]

        net = nn.Sequential(*block(1, w), nn.MaxPool2d(2), nn.Dropout(self.dropout / 2),
                            *block(w, 2 * w), nn.MaxPool2d(2), nn.Dropout(self.dropout / 2),
                            nn.Conv2d(2 * w, 4 * w, 3, padding=1, bias=False), nn.BatchNorm2d(4 * w),
                            nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(self.dropout),
                            nn.Linear(4 * w, n_outputs))
        return net.to(memory_format=self._memory_format())  # type: ignore[call-overload]  # missing from the stubs

    def _memory_format(self):
        """Channels last under bfloat16 on a CPU: oneDNN's bfloat16 convolutions want it (a step 0.77x the time of
        bfloat16 alone, BENCHMARKS.md); float32 keeps the default layout, and with it its digits."""
        import torch

        on_cpu_bf16 = getattr(self, "amp_", False) and self.device_.type == "cpu"
        return torch.channels_last if on_cpu_bf16 else torch.contiguous_format

    def encode(self, X):
        import torch

        return torch.from_numpy(np.ascontiguousarray(np.asarray(X, dtype=np.uint8).reshape(-1, 1, SIDE, SIDE)))

    def _augment(self, images):
        import kornia.augmentation as K

        if not hasattr(self, "augment_"):
            self.augment_ = K.RandomAffine(degrees=self.rotation, translate=(self.shift, self.shift),
                                           scale=(1 - self.scale, 1 + self.scale), p=1.0)
        return self.augment_(images)

    def collate(self, items, rows, train):
        images = items[rows].to(self.device_).float().div_(255.0)
        if train:
            images = self._augment(images)
        return (images.contiguous(memory_format=self._memory_format()),)

    def views(self, inputs: tuple) -> list[tuple]:
        """Test-time augmentation: the image and its copies shifted by ``tta_shifts`` pixels left/right/up/down."""
        import torch

        (images,) = inputs
        out = [(images,)]
        k = self.tta_shifts
        if k:
            for dy, dx in ((0, k), (0, -k), (k, 0), (-k, 0)):
                out.append((torch.roll(images, shifts=(dy, dx), dims=(2, 3)),))
        return out


class SeedEnsemble(Checked, ClassifierMixin, BaseEstimator):
    """The same model fitted with several seeds, probabilities averaged (for a GPU or a longer budget)."""

    _parameter_constraints: dict = {"model": [HasMethods(["fit", "predict_proba", "set_params"])],
                                    "seeds": [tuple, list]}

    def _check_values(self) -> None:
        if not self.seeds or not all(isinstance(s, int) and s >= 0 for s in self.seeds):
            raise ValueError(f"seeds must be one or more whole numbers from 0, got {self.seeds!r}")

    def __init__(self, model: Any = None, seeds: tuple[int, ...] = (0, 1, 2)):
        self.model = model
        self.seeds = seeds

    def fit(self, X, y) -> "SeedEnsemble":
        self._validate_params()
        self.models_ = [clone(self.model).set_params(seed=s).fit(X, y) for s in self.seeds]
        self.classes_ = self.models_[0].classes_
        return self

    def predict_proba(self, X) -> np.ndarray:
        return np.mean([m.predict_proba(X) for m in self.models_], axis=0)

    def predict(self, X) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def _scaled():
    return FunctionTransformer(lambda X: np.asarray(X, dtype=np.float32) / 255.0)


def make_cnn(params: dict[str, Any], seed: int) -> DigitCNN:
    from common import paths

    return DigitCNN(**params, seed=seed, checkpoint_root=str(paths.runs_dir("digit-recognizer") / ".checkpoints"))


def make_ensemble(params: dict[str, Any], seed: int) -> SeedEnsemble:
    if params["models"] < 1:
        raise ValueError(f"models must be 1 or more, got {params['models']}")
    cnn = {k: v for k, v in params.items() if k != "models"}
    return SeedEnsemble(make_cnn(cnn, seed), seeds=tuple(seed + i for i in range(params["models"])))


def make_logreg(params: dict[str, Any], seed: int):
    return make_pipeline(_scaled(), LogisticRegression(C=params["C"], max_iter=params["max_iter"]))


def make_knn(params: dict[str, Any], seed: int):
    if params["components"] < 1:  # PCA takes 0 and leaves the neighbours nothing to measure
        raise ValueError(f"components must be 1 or more, got {params['components']}")
    return make_pipeline(_scaled(), PCA(params["components"], random_state=seed),
                         KNeighborsClassifier(params["neighbors"], weights="distance"))


# 15 epochs on 2 CPU cores: ~35 s each in float32 (~960 training images/s at width 32), ~17.5 s under bfloat16
# autocast (cpu_bf16, where the CPU has bfloat16 in hardware; float32 elsewhere); the fold 10.5 or 5 min in all
# (BENCHMARKS.md, the Intel host of session 42). Fold-0 accuracy 0.99595 in float32, 0.99655 in bfloat16.
CNN = {"width": 32, "dropout": 0.25, "rotation": 10.0, "scale": 0.1, "shift": 0.1, "tta_shifts": 1, "epochs": 15,
       "learning_rate": 3e-3, "batch_size": 128, "label_smoothing": 0.1, "cpu_bf16": True}

def cnn_space(trial) -> dict[str, Any]:
    """A trial is one held-out fold of the CNN (5-11 min on 2 CPU cores, by bfloat16 support; ~1 min on a GPU)."""
    return {
        "width": trial.suggest_categorical("width", [16, 32, 48, 64]),
        "dropout": trial.suggest_float("dropout", 0.0, 0.5),
        "rotation": trial.suggest_float("rotation", 0.0, 20.0),
        "scale": trial.suggest_float("scale", 0.0, 0.2),
        "shift": trial.suggest_float("shift", 0.0, 0.15),
        "epochs": trial.suggest_int("epochs", 5, 30),
        "learning_rate": trial.suggest_float("learning_rate", 1e-3, 1e-2, log=True),
        "label_smoothing": trial.suggest_float("label_smoothing", 0.0, 0.2),
    }


def logreg_space(trial) -> dict[str, Any]:
    return {"C": trial.suggest_float("C", 1e-3, 10.0, log=True)}


def knn_space(trial) -> dict[str, Any]:
    return {"components": trial.suggest_int("components", 20, 120, log=True),
            "neighbors": trial.suggest_int("neighbors", 1, 15)}


RECIPES: dict[str, Recipe] = {
    "cnn": Recipe("compact CNN (3 conv blocks, batch norm, dropout), random affine augmentation, label smoothing, "
                  "warm-up + linear decay, shift TTA; scores one held-out fold", make_cnn, CNN, cnn_space,
                  folds_scored=1),
    "ensemble": Recipe("3 CNNs with different seeds, probabilities averaged (GPU or a longer budget)", make_ensemble,
                       {**CNN, "models": 3}, folds_scored=1),
    "logreg": Recipe("multinomial logistic regression on the scaled pixels (baseline)", make_logreg,
                     {"C": 0.1, "max_iter": 200}, logreg_space, folds_scored=1),
    "knn": Recipe("k nearest neighbours on 50 PCA components of the pixels (baseline)", make_knn,
                  {"components": 50, "neighbors": 5}, knn_space, folds_scored=1),
    "fast": Recipe("a narrow CNN for 1 short epoch, for tests", make_cnn,
                   {**CNN, "width": 8, "epochs": 1, "max_steps_per_epoch": 60, "learning_rate": 1e-2,
                    "tta_shifts": 0}, folds_scored=1),
}
RECIPES["default"] = RECIPES["cnn"]
