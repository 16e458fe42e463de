"""Sentence embeddings computed once and cached on disk, keyed by model and text hash.

Embedding a text needs no label and no fitting, so the vectors of train and test texts are the same in every fold;
the cache makes every later fold, recipe and run nearly free. An ``Embedder`` transformer puts this in a Pipeline.
"""

import hashlib
import logging
import re
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from tqdm.auto import tqdm

from common import paths
from common.blocks.text.hf_models import DEFAULT_MODEL, load_error, resolve_model
from common.compute import n_threads, native_bf16
from common.constraints import TEXT, Checked
from common.io import set_aside, write_with

log = logging.getLogger(__name__)
_ENCODERS: dict[str, object] = {}


def text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", errors="replace")).hexdigest()


def cache_file(model: str) -> Path:
    """One file per model and precision, so bfloat16 and float32 vectors never mix."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", model)
    return paths.home() / "data" / "embeddings" / f"{safe}{'-bf16' if cpu_bf16() else ''}.npz"


def cpu_bf16() -> bool:
    """Encode in bfloat16 on a CPU with native support (AVX-512 BF16 or AMX) and no GPU: twice as fast, vectors within
    0.995 cosine of float32 (all-mpnet-base-v2 on 640 tweets; BENCHMARKS.md). Elsewhere float32."""
    return not _has_gpu() and native_bf16()


def _encoder(model: str):
    if model not in _ENCODERS:
        location = resolve_model(model)
        try:
            from sentence_transformers import SentenceTransformer

            _ENCODERS[model] = SentenceTransformer(location, device="cpu" if not _has_gpu() else None)
        except Exception as exc:  # noqa: BLE001 - hub, file and format errors all mean "cannot load it"
            raise load_error(model, exc) from exc
    return _ENCODERS[model]


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def similar_length_batches(lengths: list[int], size: int) -> list[np.ndarray]:
    """Row numbers in batches of ``size``, shortest first: a batch of similar lengths pads little."""
    order = np.argsort(lengths, kind="stable")
    return [order[start:start + size] for start in range(0, len(order), size)]


SAVE_EVERY = 32  # batches between cache writes: an interrupted embedding keeps what it finished


def _encode(encoder, texts: list[str], batch_size: int,
            save: Callable[[np.ndarray, np.ndarray], None] | None = None) -> np.ndarray:
    """Normalised vectors of (at least one) ``texts``, in batches of texts with similar token counts.
    sentence-transformers batches by length in characters, which on tweets pads its batches to 1.55x their real
    tokens (1.03x by token count). On 3 000 tweets with all-mpnet-base-v2 in bfloat16: 54 s instead of 76 s, the
    same vectors (BENCHMARKS.md). ``save(rows, vectors)`` is called every ``SAVE_EVERY`` batches with the rows done
    so far."""
    tokenizer = getattr(encoder, "tokenizer", None)
    if tokenizer is not None:
        ids = tokenizer(texts, truncation=True, max_length=encoder.max_seq_length)["input_ids"]
        lengths = [len(i) for i in ids]
    else:  # a model without a text tokenizer: characters are the best guess
        lengths = [len(t) for t in texts]
    rows = similar_length_batches(lengths, batch_size)
    vectors = None
    for number, batch in enumerate(tqdm(rows, desc="embedding", unit="batch", leave=False, disable=None), start=1):
        done = encoder.encode([texts[i] for i in batch], batch_size=batch_size, show_progress_bar=False,
                              normalize_embeddings=True, convert_to_numpy=True)
        if vectors is None:
            vectors = np.empty((len(texts), done.shape[1]), dtype=np.float32)
        vectors[batch] = done
        if save is not None and number % SAVE_EVERY == 0 and number < len(rows):
            save(np.concatenate(rows[:number]), vectors)
    if vectors is None:
        raise ValueError("no texts to embed")
    return vectors


def _read_cache(path: Path) -> dict[str, np.ndarray]:
    """The cached vectors by text key. A damaged cache (cut short, edited, not an .npz) only costs the embedding
    again: it is moved aside to ``<name>.damaged`` with a warning naming it, never silently used."""
    if not path.is_file():
        return {}
    try:
        with np.load(path) as stored:
            keys, vectors = stored["keys"].tolist(), stored["vectors"]
        if vectors.ndim != 2 or len(keys) != len(vectors):
            raise ValueError(f"{len(keys)} keys for {len(vectors)} vectors")
        return dict(zip(keys, vectors, strict=True))
    except (ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        log.warning("embedding cache %s is damaged (%s): moved to %s; its texts are embedded again", path, exc,
                    set_aside(path))
        return {}


def embed(texts: list[str], model: str = DEFAULT_MODEL, batch_size: int = 64) -> np.ndarray:
    """Vectors for ``texts`` (normalised), computing only those not yet in the model's cache file."""
    path = cache_file(model)
    keys = [text_key(t) for t in texts]
    cached = _read_cache(path)
    missing = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in cached}.items())
    if missing:
        bf16 = cpu_bf16()
        log.info("embedding %d new texts with %s%s (cache %s has %d)", len(missing), model,
                 " in bfloat16" if bf16 else "", path, len(cached))
        import torch

        torch.set_num_threads(n_threads())  # torch counts the host's cores under a container's CPU quota

        def save(rows: np.ndarray, vectors: np.ndarray) -> None:
            cached.update((missing[i][0], vectors[i]) for i in rows)
            _write_cache(path, cached)

        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            vectors = _encode(_encoder(model), [t for _, t in missing], batch_size, save)
        save(np.arange(len(missing)), vectors)
    return np.stack([cached[k] for k in keys])


def _write_cache(path: Path, cached: dict[str, np.ndarray]) -> None:
    """The whole cache, atomically: a run stopped mid-write leaves the previous file."""
    keys = list(cached)
    write_with(path, lambda fh: np.savez(fh, keys=np.array(keys), vectors=np.stack([cached[k] for k in keys])))


class Embedder(Checked, TransformerMixin, BaseEstimator):
    """Pipeline step: a text column -> its sentence embedding (no fitting; vectors come from the cache)."""

    _parameter_constraints: dict = {"column": TEXT, "model": TEXT}

    def __init__(self, column: str = "text", model: str = DEFAULT_MODEL):
        self.column = column
        self.model = model

    def fit(self, X, y=None) -> "Embedder":
        self._validate_params()
        return self

    def transform(self, X) -> np.ndarray:
        return embed(X[self.column].astype(str).tolist(), self.model)
