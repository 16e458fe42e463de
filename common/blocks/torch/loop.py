"""One torch training loop for every competition that trains networks (tweets fine-tuning, digit CNNs).

It owns what each of them would otherwise rewrite: device choice, seeding, a progress bar, early stopping on a
validation score, and a checkpoint after every epoch so a killed run resumes where it stopped - with the model,
optimizer, scheduler, best weights and random states restored, so the resumed run ends exactly where an
uninterrupted one would.
"""

import copy
import functools
import logging
import operator
import pickle
import random
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from common.io import set_aside, write_with

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"


def pick_device(preferred: str | None = None) -> torch.device:
    """``preferred`` if given (e.g. "cpu"), else the GPU when there is one, else the CPU."""
    if preferred:
        return torch.device(preferred)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


@dataclass
class LoopResult:
    best_score: float
    best_epoch: int
    epochs_run: int
    resumed_from: int | None
    history: list[dict[str, float]] = field(default_factory=list)


def _rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


_CHECKPOINT_KEYS = ("model", "optimizer", "best_state", "best_score", "best_epoch", "bad_epochs", "history", "epoch",
                    "rng")


def _read_checkpoint(path: Path, owner: bool) -> dict[str, Any] | None:
    """The checkpoint to resume from, or None when it is damaged (cut short, edited): then its ``owner`` (the process
    that writes checkpoints) moves it aside to ``<name>.damaged`` with a warning naming it, and training starts from
    the first epoch - a damaged checkpoint costs the epochs it held, never a wrong resume."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        missing = [k for k in _CHECKPOINT_KEYS if k not in ckpt]
        if missing:
            raise ValueError(f"it lacks {', '.join(missing)}")
        return ckpt
    except FileNotFoundError:  # the owner moved a damaged one aside meanwhile (another process of a DDP job)
        return None
    except (RuntimeError, EOFError, ValueError, TypeError, KeyError, AttributeError, pickle.UnpicklingError,
            zipfile.BadZipFile) as exc:
        log.warning("checkpoint %s is unreadable (%s)%s; training from the first epoch", path, exc,
                    f": moved to {set_aside(path)}" if owner else "")
        return None


def train_loop(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Callable[[int], Iterable[Any]],
    loss_of: Callable[[torch.nn.Module, Any], torch.Tensor],
    evaluate: Callable[[torch.nn.Module], float] | None,
    epochs: int,
    scheduler: Any = None,
    is_better: Callable[[float, float], bool] = operator.gt,
    patience: int = 2,
    checkpoint_dir: Path | None = None,
    grad_clip: float | None = 1.0,
    progress: bool = True,
    after_epoch: Callable[[int], None] | None = None,
    scaler: Any = None,
    save_checkpoints: bool = True,
) -> LoopResult:
    """Train for up to ``epochs``; keep the best weights by ``evaluate``; stop after ``patience`` epochs without
    improvement (``is_better``: the early-stopping metric's own, e.g. ``metrics.F1.is_better``; with
    ``evaluate=None`` every epoch runs and the last weights are kept). ``batches(epoch)`` must
    give the same batches for the same epoch (seed the shuffle with it) so a resumed run sees what an
    uninterrupted one would. ``scaler`` (a ``torch.amp.GradScaler``) scales the loss for mixed precision on a GPU.
    ``save_checkpoints=False``: read a checkpoint to resume, never write one (the other processes of a DDP job).
    """
    start, best_score, best_epoch, bad_epochs, history, resumed = 0, None, -1, 0, [], None
    best_state = copy.deepcopy(model.state_dict())
    path = None if checkpoint_dir is None else Path(checkpoint_dir) / CHECKPOINT
    ckpt = _read_checkpoint(path, save_checkpoints) if path is not None and path.is_file() else None
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None and ckpt.get("scheduler") is not None:
            scheduler.load_state_dict(ckpt["scheduler"])
        if scaler is not None and ckpt.get("scaler") is not None:
            scaler.load_state_dict(ckpt["scaler"])
        best_state, best_score, best_epoch = ckpt["best_state"], ckpt["best_score"], ckpt["best_epoch"]
        bad_epochs, history, start = ckpt["bad_epochs"], ckpt["history"], ckpt["epoch"] + 1
        _set_rng_state(ckpt["rng"])
        resumed = ckpt["epoch"]
        log.info("resuming from the checkpoint of epoch %d (%s)", ckpt["epoch"], path)
    device = next(model.parameters()).device
    for epoch in range(start, epochs):
        if bad_epochs >= patience:
            break
        model.train()
        total, count = 0.0, 0
        for batch in tqdm(list(batches(epoch)), desc=f"epoch {epoch}", unit="batch", leave=False,
                          disable=None if progress else True):
            optimizer.zero_grad(set_to_none=True)
            loss = loss_of(model, batch)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
            else:
                loss.backward()
            if grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            if scheduler is not None:
                scheduler.step()
            total += float(loss.detach())
            count += 1
        model.eval()
        entry = {"epoch": epoch, "loss": total / max(count, 1)}
        if evaluate is None:  # no validation data: every epoch is the best so far, the last weights are kept
            improved = True
            log.info("epoch %d: loss %.4f", epoch, entry["loss"])
        else:
            with torch.no_grad():
                score = entry["score"] = float(evaluate(model))
            improved = best_score is None or is_better(score, best_score)
            if improved:
                best_score = score
            log.info("epoch %d: loss %.4f, validation %.5f%s", epoch, entry["loss"], score,
                     " (best)" if improved else "")
        if improved:
            best_epoch, bad_epochs = epoch, 0
            best_state = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
        else:
            bad_epochs += 1
        history.append(entry)
        if path is not None and save_checkpoints:
            path.parent.mkdir(parents=True, exist_ok=True)
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "scheduler": None if scheduler is None else scheduler.state_dict(),
                     "scaler": None if scaler is None else scaler.state_dict(),
                     "best_state": best_state, "best_score": best_score, "best_epoch": best_epoch,
                     "bad_epochs": bad_epochs, "history": history, "epoch": epoch, "rng": _rng_state()}
            write_with(path, functools.partial(torch.save, state))
        if after_epoch is not None:
            after_epoch(epoch)
    model.load_state_dict(best_state)
    model.to(device)
    return LoopResult(best_score=float(best_score) if best_score is not None else float("nan"),
                      best_epoch=best_epoch, epochs_run=len(history), resumed_from=resumed, history=history)
