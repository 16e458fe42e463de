"""Fine-tune a pretrained transformer encoder for binary text classification, as a scikit-learn estimator.

Mean-pooled encoder output -> dropout -> linear head, AdamW with linear warmup and decay, mixed-length batching
(batches of similar length so padding stays short), early stopping on F1 of a validation split carved from the
*training* rows (the CV fold being scored is never used to choose the epoch or threshold), a checkpoint per epoch
through ``common.blocks.torch.loop`` so a killed fit resumes. GPU when present, CPU otherwise.

On a CPU the encoder's matrix products are the whole cost, so ``frozen_layers=k`` keeps the embeddings and the
first k layers at their pretrained weights and trains only the layers above. Their output depends on the text
alone, so it is computed once per text and kept in memory (``_FrozenStates``) for every fold, epoch and
prediction: with k=4 of MiniLM's 6 layers an epoch over 6 000 tweets takes ~43 s on 2 CPU cores instead of ~130 s.
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
from tqdm.auto import tqdm

from common import paths
from common.blocks.text.hf_models import DEFAULT_MODEL, load_error, resolve_model
from common.blocks.text.thresholds import best_f1_threshold, shift_to_half
from common.errors import UsageError
from common.metrics import f1_score

log = logging.getLogger(__name__)


def _pad(items: list, rows: np.ndarray, pad: int = 0):
    """Rows of different lengths (token-id lists, or hidden-state tensors of shape [length, width]) -> one
    right-padded batch and its attention mask."""
    import torch

    lengths = [len(items[i]) for i in rows]
    first = items[rows[0]]
    if isinstance(first, torch.Tensor):
        batch = torch.zeros((len(rows), max(lengths), first.shape[-1]), dtype=first.dtype)
    else:
        batch = torch.full((len(rows), max(lengths)), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), max(lengths)), dtype=torch.long)
    for j, (i, n) in enumerate(zip(rows, lengths, strict=True)):
        batch[j, :n] = items[i] if isinstance(items[i], torch.Tensor) else torch.tensor(items[i])
        mask[j, :n] = 1
    return batch, mask


class _FrozenStates:
    """Output of the frozen bottom of one backbone per text, computed once per process and shared by every fit
    (every CV fold embeds the same texts). Holds one backbone configuration at a time to bound memory."""

    key: tuple | None = None
    states: dict[str, object] = {}

    @classmethod
    def get(cls, key: tuple, bottom, tokenizer, texts: list[str], max_length: int, device) -> list:
        import torch

        if cls.key != key:
            cls.key, cls.states = key, {}
        missing = list(dict.fromkeys(t for t in texts if t not in cls.states))
        if missing:
            log.info("computing the frozen layers once for %d texts", len(missing))
            ids = tokenizer(missing, truncation=True, max_length=max_length)["input_ids"]
            order = np.argsort([len(x) for x in ids], kind="stable")  # similar lengths together: little padding
            pad = tokenizer.pad_token_id or 0
            bottom.eval()
            with torch.no_grad():
                for start in tqdm(range(0, len(order), 128), desc="frozen layers", unit="batch", leave=False,
                                  disable=None):
                    rows = order[start:start + 128]
                    input_ids, mask = _pad(ids, rows, pad)
                    hidden = bottom(input_ids=input_ids.to(device), attention_mask=mask.to(device)).last_hidden_state
                    for j, i in enumerate(rows):
                        cls.states[missing[i]] = hidden[j, :len(ids[i])].to("cpu").clone()
        return [cls.states[t] for t in texts]


def _split_backbone(encoder, frozen_layers: int):
    """(bottom, top): bottom = embeddings + first k layers (frozen); top = the same model with the remaining layers
    and an embedding module that passes ``inputs_embeds`` through, so the model still builds its own masks."""
    import copy

    import torch

    class PassThrough(torch.nn.Module):
        def forward(self, input_ids=None, inputs_embeds=None, **kwargs):
            return inputs_embeds

    lists = [(name, module) for name, module in encoder.named_modules() if isinstance(module, torch.nn.ModuleList)]
    if not lists or not hasattr(encoder, "embeddings"):
        raise UsageError(f"frozen_layers needs an encoder with an embeddings module and a list of layers; "
                         f"{type(encoder).__name__} has not: use frozen_layers=0")
    name, layers = max(lists, key=lambda item: len(item[1]))
    if not 0 < frozen_layers < len(layers):
        raise UsageError(f"frozen_layers must be between 1 and {len(layers) - 1} for this backbone "
                         f"({len(layers)} layers)")
    parent_name, _, attr = name.rpartition(".")
    bottom, top = copy.deepcopy(encoder), encoder
    for model, kept in ((bottom, slice(None, frozen_layers)), (top, slice(frozen_layers, None))):
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, torch.nn.ModuleList(list(getattr(parent, attr))[kept]))
    top.embeddings = PassThrough()
    for parameter in bottom.parameters():
        parameter.requires_grad_(False)
    return bottom.eval(), top


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
                 weight_decay: float = 0.01, patience: int = 1, valid_fraction: float = 0.1, frozen_layers: int = 0,
                 seed: int = 0, device: str | None = None, checkpoint_root: str | None = None,
                 max_steps_per_epoch: int | None = None, keep_checkpoints: bool = False):
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
        self.frozen_layers = frozen_layers
        self.seed = seed
        self.device = device
        self.checkpoint_root = checkpoint_root
        self.max_steps_per_epoch = max_steps_per_epoch
        self.keep_checkpoints = keep_checkpoints

    # -- building blocks -------------------------------------------------------------------------------------
    def _load_backbone(self):
        """(tokenizer, trainable network, frozen bottom or None)."""
        import torch
        from transformers import AutoModel, AutoTokenizer

        location = resolve_model(self.model)
        try:
            tokenizer = AutoTokenizer.from_pretrained(location)
            encoder = AutoModel.from_pretrained(location)
        except Exception as exc:  # noqa: BLE001 - hub, file and format errors all mean "cannot load it"
            raise load_error(self.model, exc) from exc
        bottom = None
        if self.frozen_layers:
            bottom, encoder = _split_backbone(encoder, self.frozen_layers)

        class Classifier(torch.nn.Module):
            def __init__(self, encoder):
                super().__init__()
                self.encoder = encoder
                self.dropout = torch.nn.Dropout(0.1)
                self.head = torch.nn.Linear(encoder.config.hidden_size, 2)

            def forward(self, inputs, attention_mask):
                key = "input_ids" if inputs.dtype == torch.long else "inputs_embeds"
                hidden = self.encoder(**{key: inputs}, attention_mask=attention_mask).last_hidden_state
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                return self.head(self.dropout(pooled))

        return tokenizer, Classifier(encoder), bottom

    def _inputs(self, texts: list[str]) -> list:
        """Per text: its token ids, or (with frozen layers) the frozen bottom's hidden states."""
        if self.bottom_ is None:
            return self.tokenizer_(texts, truncation=True, max_length=self.max_length)["input_ids"]
        key = (resolve_model(self.model), self.frozen_layers, self.max_length)
        return _FrozenStates.get(key, self.bottom_, self.tokenizer_, texts, self.max_length, self.device_)

    def _collate(self, items: list, rows: np.ndarray):
        inputs, mask = _pad(items, rows, self.tokenizer_.pad_token_id or 0)
        return inputs.to(self.device_), mask.to(self.device_)

    def _proba(self, items: list) -> np.ndarray:
        import torch

        lengths = np.array([len(x) for x in items])
        order = np.argsort(lengths, kind="stable")
        out = np.empty(len(items))
        self.net_.eval()
        with torch.no_grad():
            for start in range(0, len(order), 128):
                rows = order[start:start + 128]
                logits = self.net_(*self._collate(items, rows))
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
        """Without a validation split (``valid_fraction=0``) every row trains, all epochs run and the threshold
        stays at 0.5 - for use inside a blend, whose meta-model places the threshold on out-of-fold rows."""
        import torch

        from common.blocks.torch.loop import pick_device, seed_everything, train_loop

        seed_everything(self.seed)
        self.device_ = pick_device(self.device)
        texts = X[self.text_column].astype(str).tolist()
        y = np.asarray(y).astype(int)
        self.classes_ = np.array([0, 1])
        self.tokenizer_, self.net_, self.bottom_ = self._load_backbone()
        self.net_.to(self.device_)
        if self.bottom_ is not None:
            self.bottom_.to(self.device_)
        rows = np.arange(len(texts))
        if self.valid_fraction:
            train_rows, valid_rows = train_test_split(rows, test_size=self.valid_fraction, stratify=y,
                                                      random_state=self.seed)
        else:
            train_rows, valid_rows = rows, rows[:0]
        items = self._inputs(texts)
        train_items = [items[i] for i in train_rows]
        valid_items = [items[i] for i in valid_rows]
        y_train, y_valid = y[train_rows], y[valid_rows]
        lengths = np.array([len(x) for x in train_items])
        steps = math.ceil(len(train_items) / self.batch_size)
        if self.max_steps_per_epoch:
            steps = min(steps, self.max_steps_per_epoch)
        total = max(1, steps * self.epochs)
        warm = max(1, int(self.warmup * total))
        trainable = [p for p in self.net_.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=self.learning_rate, weight_decay=self.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: min((step + 1) / warm, max(0.0, (total - step) / max(1, total - warm))))
        labels = torch.tensor(y_train)
        loss_fn = torch.nn.CrossEntropyLoss()

        def batches(epoch: int):
            return _batches(lengths, self.batch_size, self.seed * 1000 + epoch)[:steps]

        def loss_of(net, rows):
            return loss_fn(net(*self._collate(train_items, rows)), labels[rows].to(self.device_))

        def evaluate(net) -> float:
            return f1_score(y_valid, (self._proba(valid_items) >= 0.5).astype(int))

        checkpoint_dir = self._checkpoint_dir(texts, y)
        self.loop_ = train_loop(self.net_, optimizer, batches, loss_of, evaluate if len(valid_rows) else None,
                                self.epochs, scheduler=scheduler, patience=self.patience,
                                checkpoint_dir=checkpoint_dir)
        self.threshold_ = best_f1_threshold(y_valid, self._proba(valid_items)) if len(valid_rows) else 0.5
        if checkpoint_dir is not None and not self.keep_checkpoints:
            shutil.rmtree(checkpoint_dir, ignore_errors=True)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = shift_to_half(self._proba(self._inputs(X[self.text_column].astype(str).tolist())), self.threshold_)
        return np.c_[1 - p, p]

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


def default_checkpoint_root(competition: str) -> str:
    return str(paths.runs_dir(competition) / ".checkpoints")
