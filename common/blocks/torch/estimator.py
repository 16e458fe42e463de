"""Torch estimators with scikit-learn's contract, generic over the network, the batches and the kind of target.

Everything a network competition would otherwise rewrite lives here once (``TorchEstimator``): the target's own
head (``TorchClassifier``: classes from ``y``, binary or multiclass, cross-entropy, softmax; ``TorchRegressor``:
real values, one or many per row, L1 on the known ones - NaN targets are skipped), a validation split carved from
the *training* rows for early stopping on a metric passed in (the scored CV fold is never used to pick the epoch),
device choice (CUDA with mixed precision when present, else the CPU with the toolkit's thread count; bfloat16
autocast there too with ``cpu_bf16``, where the CPU has native bfloat16), data-parallel
training under ``torchrun`` (DistributedDataParallel, NCCL on GPUs, gloo on CPUs: each process trains on its shard
of every batch), seeding, AdamW with linear warm-up and decay, label smoothing, a checkpoint after every epoch with
exact resume (common.blocks.torch.loop), and a progress bar.

A subclass says only what is specific to it:

- ``build_network(n_outputs)``: the ``torch.nn.Module`` (logits or values out);
- ``encode(X)``: one item per row (an image tensor, a token list...), indexable by row number;
- ``collate(items, rows, train)``: the network's input tensors for those rows (``train``: augment here);
- optionally ``batch_order(items, epoch)`` (default: a seeded shuffle), ``predict_order(items)``, ``views``
  (test-time augmentation), ``after_fit``.
"""

import hashlib
import json
import logging
import math
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.model_selection import train_test_split

from common.competition import binary_labels
from common.compute import init_distributed, n_threads, native_bf16, world
from common.constraints import (
    BOOLEAN,
    NON_NEGATIVE,
    NON_NEGATIVE_INT,
    OPTIONAL_TEXT,
    POSITIVE,
    POSITIVE_INT,
    Checked,
    between,
)
from common.metrics import ACCURACY, Metric

log = logging.getLogger(__name__)


def masked_mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    known = ~np.isnan(y_true)
    return float(np.abs(y_true[known] - y_pred[known]).mean()) if known.any() else float("nan")


MAE = Metric("mae", masked_mae, greater_is_better=False)


class TorchEstimator(Checked, BaseEstimator):
    """Subclasses add their own ``__init__`` params and must pass these through (scikit-learn clones by them), and
    declare their ranges on top of these."""

    predict_batch = 256
    _parameter_constraints: dict = {
        "epochs": POSITIVE_INT, "learning_rate": POSITIVE, "batch_size": POSITIVE_INT, "warmup": between(0, 1),
        "weight_decay": NON_NEGATIVE, "patience": POSITIVE_INT, "valid_fraction": between(0, 1, "left"),
        "label_smoothing": between(0, 1, "left"), "early_stopping": [Metric, None], "seed": NON_NEGATIVE_INT,
        "device": OPTIONAL_TEXT, "checkpoint_root": OPTIONAL_TEXT, "max_steps_per_epoch": [*POSITIVE_INT, None],
        "keep_checkpoints": BOOLEAN, "progress": BOOLEAN, "cpu_bf16": BOOLEAN,
    }

    def __init__(self, epochs: int = 10, learning_rate: float = 1e-3, batch_size: int = 64, warmup: float = 0.1,
                 weight_decay: float = 0.01, patience: int = 2, valid_fraction: float = 0.1,
                 label_smoothing: float = 0.0, early_stopping: Metric | None = None, seed: int = 0,
                 device: str | None = None, checkpoint_root: str | None = None,
                 max_steps_per_epoch: int | None = None, keep_checkpoints: bool = False, progress: bool = True,
                 cpu_bf16: bool = False):
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.warmup = warmup
        self.weight_decay = weight_decay
        self.patience = patience
        self.valid_fraction = valid_fraction
        self.label_smoothing = label_smoothing
        self.early_stopping = early_stopping
        self.seed = seed
        self.device = device
        self.checkpoint_root = checkpoint_root
        self.max_steps_per_epoch = max_steps_per_epoch
        self.keep_checkpoints = keep_checkpoints
        self.progress = progress
        self.cpu_bf16 = cpu_bf16

    # -- what a subclass provides -----------------------------------------------------------------------------
    def build_network(self, n_outputs: int):
        raise NotImplementedError

    def encode(self, X) -> Sequence:
        raise NotImplementedError

    def collate(self, items: Sequence, rows: np.ndarray, train: bool) -> tuple:
        raise NotImplementedError

    def batch_order(self, items: Sequence, epoch: int) -> list[np.ndarray]:
        """Row numbers of each batch of one epoch; the same epoch must give the same batches (exact resume)."""
        order = np.random.default_rng(self.seed * 1000 + epoch).permutation(len(items))
        return [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]

    def views(self, inputs: tuple) -> list[tuple]:
        """Test-time augmentation: the inputs as they are; a subclass may add transformed copies, whose
        probabilities are averaged."""
        return [inputs]

    def predict_order(self, items: Sequence) -> np.ndarray:
        return np.arange(len(items))

    def after_fit(self, valid_y: np.ndarray, valid_proba: np.ndarray) -> None:
        """Called once with the validation split's truth and probabilities (e.g. to place a threshold)."""

    def checkpoint_key(self, X, y) -> bytes:
        """What identifies this fit's data for its checkpoint folder (default: the encoded rows' bytes)."""
        return np.asarray(y).tobytes() + str(len(y)).encode()

    # -- the kind of target (a classifier or a regressor head) ----------------------------------------------------
    def _targets(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, int]:
        """(targets the loss sees, labels to stratify the validation split by or None, number of outputs)."""
        raise NotImplementedError

    def _loss(self, outputs, targets):
        raise NotImplementedError

    def _transform(self, outputs):
        """Network outputs -> predictions (probabilities for a classifier)."""
        return outputs

    def _metric(self) -> Metric:
        raise NotImplementedError

    def _score(self, targets: np.ndarray, outputs: np.ndarray) -> float:
        return self._metric()(targets, outputs)

    # -- the shared machinery -------------------------------------------------------------------------------------
    def _setup(self) -> None:
        import torch

        from common.blocks.torch.loop import pick_device, seed_everything

        seed_everything(self.seed)
        self.rank_, self.processes_ = world()
        self.backend_ = init_distributed()
        device = self.device
        if self.backend_ == "nccl" and device is None:
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        self.device_ = pick_device(device)
        if self.device_.type == "cpu":
            torch.set_num_threads(n_threads())
        # Mixed precision where it pays: on a GPU, and with ``cpu_bf16`` on a CPU with bfloat16 in hardware (AVX-512
        # BF16 or AMX; emulated elsewhere, so slower). On the Intel host of BENCHMARKS.md a digit CNN step took
        # 0.6x the time; the CV moves by the rounding, as the text embeddings' do.
        self.amp_ = self.device_.type == "cuda" or (self.cpu_bf16 and self.device_.type == "cpu" and native_bf16())

    def _checkpoint_dir(self, X, y) -> Path | None:
        if self.checkpoint_root is None:
            return None
        params = {k: v for k, v in self.get_params().items()
                  if k not in ("checkpoint_root", "keep_checkpoints", "progress")}
        # A metric is named by its name: its function's repr holds a memory address that differs per process.
        digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=lambda v: getattr(v, "name", str(v)))
                                .encode())
        digest.update(self.checkpoint_key(X, y))
        return Path(self.checkpoint_root) / digest.hexdigest()[:20]

    def _split(self, n: int, stratify: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        rows = np.arange(n)
        if not self.valid_fraction:
            return rows, rows[:0]
        return train_test_split(rows, test_size=self.valid_fraction, stratify=stratify, random_state=self.seed)

    def _logits(self, inputs: tuple, net=None):
        import torch

        with torch.autocast(device_type=self.device_.type, enabled=self.amp_):
            return (net or self.net_)(*inputs)

    def _shard(self, batches: list[np.ndarray]) -> list[np.ndarray]:
        """This process's part of every global batch (all of it when alone). Every process draws the same global
        batches from the same seed, so the shards never overlap and together cover the epoch."""
        if self.processes_ <= 1:
            return batches
        return [b[self.rank_::self.processes_] for b in batches if len(b) >= self.processes_]

    def _outputs(self, items: Sequence) -> np.ndarray:
        """Predictions for every item (the views of test-time augmentation averaged), in item order."""
        import torch

        order = self.predict_order(items)
        out = np.empty((len(items), self.n_outputs_))
        self.net_.eval()
        with torch.no_grad():
            for start in range(0, len(order), self.predict_batch):
                rows = order[start:start + self.predict_batch]
                views = self.views(self.collate(items, rows, train=False))
                outputs = [self._transform(self._logits(view).float()) for view in views]
                out[rows] = torch.stack(outputs).mean(dim=0).reshape(len(rows), -1).cpu().numpy()
        return out

    def fit(self, X, y) -> "TorchEstimator":
        import torch

        from common.blocks.torch.loop import train_loop

        self._validate_params()
        self._setup()
        y = np.asarray(y)
        targets, stratify, self.n_outputs_ = self._targets(y)
        self.net_ = self.build_network(self.n_outputs_).to(self.device_)
        trainer = self.net_
        if self.processes_ > 1:  # gradients averaged over the processes after every batch
            from torch.nn.parallel import DistributedDataParallel

            trainer = DistributedDataParallel(self.net_, device_ids=[self.device_] if self.device_.type == "cuda"
                                              else None)
            log.info("data-parallel training on %d processes (%s), this is rank %d", self.processes_,
                     self.backend_, self.rank_)
        train_rows, valid_rows = self._split(len(targets), stratify)
        items = self.encode(X)
        train_items = _Subset(items, train_rows)
        valid_items = _Subset(items, valid_rows)
        y_train, y_valid = targets[train_rows], targets[valid_rows]
        steps = math.ceil(len(train_rows) / self.batch_size)
        if self.max_steps_per_epoch:
            steps = min(steps, self.max_steps_per_epoch)
        total = max(1, steps * self.epochs)
        warm = max(1, int(self.warmup * total))
        trainable = [p for p in self.net_.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=self.learning_rate, weight_decay=self.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: min((step + 1) / warm, max(0.0, (total - step) / max(1, total - warm))))
        labels = torch.tensor(y_train)

        def loss_of(net, rows):
            outputs = self._logits(self.collate(train_items, rows, train=True), trainer)
            return self._loss(outputs.float(), labels[rows].to(self.device_))

        def evaluate(net) -> float:
            return self._score(y_valid, self._outputs(valid_items))

        metric = self._metric()
        checkpoint_dir = self._checkpoint_dir(X, y)
        self.loop_ = train_loop(self.net_, optimizer,
                                lambda epoch: self._shard(self.batch_order(train_items, epoch)[:steps]),
                                loss_of, evaluate if len(valid_rows) else None, self.epochs, scheduler=scheduler,
                                is_better=metric.is_better, patience=self.patience, checkpoint_dir=checkpoint_dir,
                                progress=self.progress and self.rank_ == 0,
                                scaler=torch.amp.GradScaler("cuda") if self.device_.type == "cuda" else None,
                                save_checkpoints=self.rank_ == 0)
        self.after_fit(y_valid, self._outputs(valid_items) if len(valid_rows) else np.empty((0, self.n_outputs_)))
        if checkpoint_dir is not None and not self.keep_checkpoints and self.rank_ == 0:
            shutil.rmtree(checkpoint_dir, ignore_errors=True)
        return self


class TorchClassifier(ClassifierMixin, TorchEstimator):
    """Classes from ``y``; cross-entropy with label smoothing; early stopping on ``early_stopping`` (accuracy)."""

    def _targets(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, int]:
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        return y_idx, y_idx, len(self.classes_)

    def _loss(self, outputs, targets):
        import torch

        return torch.nn.functional.cross_entropy(outputs, targets, label_smoothing=self.label_smoothing)

    def _transform(self, outputs):
        import torch

        return torch.softmax(outputs, dim=-1)

    def _metric(self) -> Metric:
        return self.early_stopping or ACCURACY

    def _score(self, y_idx: np.ndarray, proba: np.ndarray) -> float:
        return self._metric()(y_idx, self.decode(proba))

    def decode(self, proba: np.ndarray) -> np.ndarray:
        """Class indices from probabilities: the toolkit's one binary decode (0.5) for two classes, else argmax."""
        return binary_labels(proba[:, 1]) if proba.shape[1] == 2 else proba.argmax(axis=1)

    def predict_proba(self, X) -> np.ndarray:
        return self._outputs(self.encode(X))

    def predict(self, X) -> np.ndarray:
        return self.classes_[self.decode(self.predict_proba(X))]


class TorchRegressor(RegressorMixin, TorchEstimator):
    """Real-valued targets, one or several per row (a forecast horizon); L1 loss on the known targets (NaN ones
    are skipped, so gaps in a series need no filling); early stopping on ``early_stopping`` (masked MAE)."""

    def _targets(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, int]:
        y = np.asarray(y, dtype=np.float32)
        return y, None, 1 if y.ndim == 1 else y.shape[1]

    def _loss(self, outputs, targets):
        outputs = outputs.reshape(targets.shape)
        known = ~targets.isnan()
        return (outputs - targets.nan_to_num()).abs().mul(known).sum() / known.sum().clamp(min=1)

    def _metric(self) -> Metric:
        return self.early_stopping or MAE

    def _score(self, targets: np.ndarray, outputs: np.ndarray) -> float:
        return self._metric()(targets, outputs.reshape(targets.shape))

    def predict(self, X) -> np.ndarray:
        out = self._outputs(self.encode(X))
        return out[:, 0] if self.n_outputs_ == 1 else out


class _Subset(Sequence):
    """Rows of an encoded sequence, without copying it (items may be large tensors)."""

    def __init__(self, items: Sequence, rows: np.ndarray):
        self.items, self.rows = items, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: Any):
        return self.items[self.rows[i]]
