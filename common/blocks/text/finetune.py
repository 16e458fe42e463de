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

import logging

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from common import paths
from common.blocks.text.embeddings import similar_length_batches
from common.blocks.text.hf_models import DEFAULT_MODEL, load_error, resolve_model
from common.blocks.text.thresholds import best_f1_threshold, shift_to_half
from common.blocks.torch.estimator import TorchClassifier
from common.constraints import NON_NEGATIVE_INT, TEXT, at_least
from common.errors import UsageError
from common.metrics import F1, Metric

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
            pad = tokenizer.pad_token_id or 0
            bottom.eval()
            with torch.no_grad():
                for rows in tqdm(similar_length_batches([len(x) for x in ids], 128), desc="frozen layers",
                                 unit="batch", leave=False, disable=None):
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
    batches: list[np.ndarray] = []
    for start in range(0, len(order), chunk):
        part = order[start:start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches.extend(part[i:i + batch_size] for i in range(0, len(part), batch_size))
    rng.shuffle(batches)
    return batches


class TransformerClassifier(TorchClassifier):
    """A pretrained encoder with a mean-pooling head, on the generic torch classifier: only the backbone, how
    texts become inputs (token ids, or the cached frozen bottom's states), padded batches of similar lengths, and an
    F1 threshold placed on the validation split are its own."""

    predict_batch = 128
    # at least 2 tokens: the backbone's start and end markers
    _parameter_constraints: dict = {**TorchClassifier._parameter_constraints, "model": TEXT, "text_column": TEXT,
                                    "max_length": at_least(2), "frozen_layers": NON_NEGATIVE_INT}

    def __init__(self, model: str = DEFAULT_MODEL, text_column: str = "text", epochs: int = 3,
                 learning_rate: float = 5e-5, batch_size: int = 32, max_length: int = 64, warmup: float = 0.1,
                 weight_decay: float = 0.01, patience: int = 1, valid_fraction: float = 0.1, frozen_layers: int = 0,
                 seed: int = 0, device: str | None = None, checkpoint_root: str | None = None,
                 max_steps_per_epoch: int | None = None, keep_checkpoints: bool = False,
                 label_smoothing: float = 0.0, early_stopping: Metric | None = F1, progress: bool = True):
        super().__init__(epochs=epochs, learning_rate=learning_rate, batch_size=batch_size, warmup=warmup,
                         weight_decay=weight_decay, patience=patience, valid_fraction=valid_fraction,
                         label_smoothing=label_smoothing, early_stopping=early_stopping, seed=seed, device=device,
                         checkpoint_root=checkpoint_root, max_steps_per_epoch=max_steps_per_epoch,
                         keep_checkpoints=keep_checkpoints, progress=progress)
        self.model = model
        self.text_column = text_column
        self.max_length = max_length
        self.frozen_layers = frozen_layers

    def build_network(self, n_outputs: int):
        """The trainable network; the tokenizer and the frozen bottom (or None) are kept beside it."""
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.location_ = location = resolve_model(self.model)
        try:
            self.tokenizer_ = AutoTokenizer.from_pretrained(location)
            encoder = AutoModel.from_pretrained(location)
        except Exception as exc:  # noqa: BLE001 - hub, file and format errors all mean "cannot load it"
            raise load_error(self.model, exc) from exc
        self.bottom_ = None
        if self.frozen_layers:
            self.bottom_, encoder = _split_backbone(encoder, self.frozen_layers)
            self.bottom_.to(self.device_)

        class Classifier(torch.nn.Module):
            def __init__(self, encoder):
                super().__init__()
                self.encoder = encoder
                self.dropout = torch.nn.Dropout(0.1)
                self.head = torch.nn.Linear(encoder.config.hidden_size, n_outputs)

            def forward(self, inputs, attention_mask):
                key = "input_ids" if inputs.dtype == torch.long else "inputs_embeds"
                hidden = self.encoder(**{key: inputs}, attention_mask=attention_mask).last_hidden_state
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                return self.head(self.dropout(pooled))

        return Classifier(encoder)

    def _texts(self, X: pd.DataFrame) -> list[str]:
        return X[self.text_column].astype(str).tolist()

    def encode(self, X: pd.DataFrame) -> list:
        """Per text: its token ids, or (with frozen layers) the frozen bottom's hidden states."""
        texts = self._texts(X)
        if self.bottom_ is None:
            return self.tokenizer_(texts, truncation=True, max_length=self.max_length)["input_ids"]
        key = (self.location_, self.frozen_layers, self.max_length)
        return _FrozenStates.get(key, self.bottom_, self.tokenizer_, texts, self.max_length, self.device_)

    def collate(self, items, rows: np.ndarray, train: bool):
        inputs, mask = _pad(items, rows, self.tokenizer_.pad_token_id or 0)
        return inputs.to(self.device_), mask.to(self.device_)

    def batch_order(self, items, epoch: int) -> list[np.ndarray]:
        return _batches(np.array([len(x) for x in items]), self.batch_size, self.seed * 1000 + epoch)

    def predict_order(self, items) -> np.ndarray:
        return np.argsort(np.array([len(x) for x in items]), kind="stable")  # similar lengths: little padding

    def checkpoint_key(self, X: pd.DataFrame, y) -> bytes:
        return "".join(f"{label}\t{text}\n" for text, label in zip(self._texts(X), y, strict=True)).encode(
            "utf-8", errors="replace")

    def fit(self, X: pd.DataFrame, y) -> "TransformerClassifier":
        """Without a validation split (``valid_fraction=0``) every row trains, all epochs run and the threshold
        stays at 0.5 - for use inside a blend, whose meta-model places the threshold on out-of-fold rows."""
        return super().fit(X, np.asarray(y).astype(int))

    def after_fit(self, valid_y: np.ndarray, valid_proba: np.ndarray) -> None:
        self.threshold_ = best_f1_threshold(valid_y, valid_proba[:, 1]) if len(valid_y) else 0.5

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = shift_to_half(super().predict_proba(X)[:, 1], self.threshold_)
        return np.c_[1 - p, p]


def default_checkpoint_root(competition: str) -> str:
    return str(paths.runs_dir(competition) / ".checkpoints")
