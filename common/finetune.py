"""Fine-tune a pretrained transformer encoder for binary text classification, as a scikit-learn estimator.

Mean-pooled encoder output -> dropout -> linear head, AdamW with linear warmup and decay, mixed-length batching
(batches of similar length so padding stays short), early stopping on F1 of a validation split carved from the
*training* rows (the CV fold being scored is never used to choose the epoch or threshold), a checkpoint per epoch
through ``common.torch_loop`` so a killed fit resumes. GPU when present, CPU otherwise.
"""

import hashlib
import json
import logging
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import train_test_split

from common import paths
from common.hf_models import DEFAULT_MODEL, load_error, resolve_model
from common.metrics import f1_score
from common.thresholds import best_f1_threshold, shift_to_half

log = logging.getLogger(__name__)


def _batches(lengths: np.ndarray, batch_size: int, seed: int) -> list[np.ndarray]:
    """Shuffle, then sort within chunks of 50 batches by length, then shuffle the batches: little padding,
    still random order; the same seed gives the same batches."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths))
    chunk = batch_size * 50
    batches = []
    for start in range(0, len(order), chunk):
        part = order[start:start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches.extend(part[i:i + batch_size] for i in range(0, len(part), batch_size))
    rng.shuffle(batches)
    return batches


class TransformerClassifier(ClassifierMixin, BaseEstimator):
    def __init__(self, model: str = DEFAULT_MODEL, text_column: str = "text", epochs: int = 3,
                 learning_rate: float = 5e-5, batch_size: int = 32, max_length: int = 64, warmup: float = 0.1,
                 weight_decay: float = 0.01, patience: int = 1, valid_fraction: float = 0.1, seed: int = 0,
                 device: str | None = None, checkpoint_root: str | None = None, max_steps_per_epoch: int | None = None,
                 keep_checkpoints: bool = False):
        self.model = model
        self.text_column = text_column
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_length = max_length
        self.warmup = warmup
        self.weight_decay = weight_decay
        self.patience = patience
        self.valid_fraction = valid_fraction
        self.seed = seed
        self.device = device
        self.checkpoint_root = checkpoint_root
        self.max_steps_per_epoch = max_steps_per_epoch
        self.keep_checkpoints = keep_checkpoints

    # -- building blocks -------------------------------------------------------------------------------------
    def _load_backbone(self):
        import torch
        from transformers import AutoModel, AutoTokenizer

        location = resolve_model(self.model)
        try:
            tokenizer = AutoTokenizer.from_pretrained(location)
            encoder = AutoModel.from_pretrained(location)
        except Exception as exc:  # noqa: BLE001 - hub, file and format errors all mean "cannot load it"
            raise load_error(self.model, exc) from exc

        class Classifier(torch.nn.Module):
            def __init__(self, encoder):
                super().__init__()
                self.encoder = encoder
                self.dropout = torch.nn.Dropout(0.1)
                self.head = torch.nn.Linear(encoder.config.hidden_size, 2)

            def forward(self, input_ids, attention_mask):
                hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                return self.head(self.dropout(pooled))

        return tokenizer, Classifier(encoder)

    def _encode(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer_(texts, truncation=True, max_length=self.max_length)["input_ids"]

    def _collate(self, ids: list[list[int]], rows: np.ndarray):
        import torch

        width = max(len(ids[i]) for i in rows)
        pad = self.tokenizer_.pad_token_id or 0
        input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for j, i in enumerate(rows):
            input_ids[j, :len(ids[i])] = torch.tensor(ids[i])
            mask[j, :len(ids[i])] = 1
        return input_ids.to(self.device_), mask.to(self.device_)

    def _proba(self, ids: list[list[int]]) -> np.ndarray:
        import torch

        lengths = np.array([len(x) for x in ids])
        order = np.argsort(lengths, kind="stable")
        out = np.empty(len(ids))
        self.net_.eval()
        with torch.no_grad():
            for start in range(0, len(order), 128):
                rows = order[start:start + 128]
                logits = self.net_(*self._collate(ids, rows))
                out[rows] = torch.softmax(logits, dim=-1)[:, 1].cpu().numpy()
        return out

    def _checkpoint_dir(self, texts: list[str], y: np.ndarray) -> Path | None:
        if self.checkpoint_root is None:
            return None
        params = {k: v for k, v in self.get_params().items() if k not in ("checkpoint_root", "keep_checkpoints")}
        digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode())
        for text, label in zip(texts, y, strict=True):
            digest.update(f"{label}\t{text}\n".encode("utf-8", errors="replace"))
        return Path(self.checkpoint_root) / digest.hexdigest()[:20]

    # -- scikit-learn API ---------------------------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y) -> "TransformerClassifier":
        import torch

        from common.torch_loop import pick_device, seed_everything, train_loop

        seed_everything(self.seed)
        self.device_ = pick_device(self.device)
        texts = X[self.text_column].astype(str).tolist()
        y = np.asarray(y).astype(int)
        self.classes_ = np.array([0, 1])
        self.tokenizer_, self.net_ = self._load_backbone()
        self.net_.to(self.device_)
        train_rows, valid_rows = train_test_split(np.arange(len(texts)), test_size=self.valid_fraction,
                                                  stratify=y, random_state=self.seed)
        ids = self._encode(texts)
        train_ids = [ids[i] for i in train_rows]
        valid_ids = [ids[i] for i in valid_rows]
        y_train, y_valid = y[train_rows], y[valid_rows]
        lengths = np.array([len(x) for x in train_ids])
        steps = math.ceil(len(train_ids) / self.batch_size)
        if self.max_steps_per_epoch:
            steps = min(steps, self.max_steps_per_epoch)
        total = max(1, steps * self.epochs)
        warm = max(1, int(self.warmup * total))
        optimizer = torch.optim.AdamW(self.net_.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: min((step + 1) / warm, max(0.0, (total - step) / max(1, total - warm))))
        labels = torch.tensor(y_train)
        loss_fn = torch.nn.CrossEntropyLoss()

        def batches(epoch: int):
            return _batches(lengths, self.batch_size, self.seed * 1000 + epoch)[:steps]

        def loss_of(net, rows):
            return loss_fn(net(*self._collate(train_ids, rows)), labels[rows].to(self.device_))

        def evaluate(net) -> float:
            return f1_score(y_valid, (self._proba(valid_ids) >= 0.5).astype(int))

        checkpoint_dir = self._checkpoint_dir(texts, y)
        self.loop_ = train_loop(self.net_, optimizer, batches, loss_of, evaluate, self.epochs, scheduler=scheduler,
                                patience=self.patience, checkpoint_dir=checkpoint_dir)
        self.threshold_ = best_f1_threshold(y_valid, self._proba(valid_ids))
        if checkpoint_dir is not None and not self.keep_checkpoints:
            shutil.rmtree(checkpoint_dir, ignore_errors=True)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = shift_to_half(self._proba(self._encode(X[self.text_column].astype(str).tolist())), self.threshold_)
        return np.c_[1 - p, p]

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


def default_checkpoint_root(competition: str) -> str:
    return str(paths.runs_dir(competition) / ".checkpoints")
