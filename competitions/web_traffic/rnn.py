"""A GRU encoder-decoder on log1p visits, the model family that won this competition, on the toolkit's torch
estimator (GPU with mixed precision when present, CPU threads otherwise, seeding, early stopping).

The encoder reads ``encoder_days`` of a page's history (visits relative to the page's level, a missing flag, the
weekday, the same day a year before); the decoder is told, for every day to forecast, its weekday, its value a year
before and how far ahead it is - never its own previous guesses, so errors do not feed back. Page project / access /
agent enter as embeddings at every step. Training samples are past cut-offs of each page, drawn at random; the loss
is L1 in log space (what SMAPE rewards), skipping missing days.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from torch import nn

from common.blocks.series import nan_median
from common.blocks.torch.estimator import TorchRegressor
from common.constraints import BOOLEAN, NON_NEGATIVE_INT, OPTIONAL_TEXT, POSITIVE, POSITIVE_INT, Checked
from common.errors import UsageError
from common.splitters import ForecastTask
from competitions.web_traffic.baselines import log_history
from competitions.web_traffic.features import YEAR
from competitions.web_traffic.global_lgbm import static_codes


@dataclass
class Samples(Sequence):
    """(page, cut-off) pairs over one panel; the batches are cut out of ``logged`` when collated."""

    logged: np.ndarray  # pages x days, log1p visits, NaN = missing
    dow: np.ndarray  # weekday of each day position (extends past the history into the forecast days)
    codes: np.ndarray  # pages x 3
    series: np.ndarray
    cut: np.ndarray  # the first day after the history of each sample
    encoder_days: int
    steps: int  # gap + horizon days decoded after each cut

    def __len__(self) -> int:
        return len(self.series)

    def __getitem__(self, i):
        return self.series[i], self.cut[i]


def _gather(logged: np.ndarray, series: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """logged[series, positions] with NaN outside the known days."""
    inside = (positions >= 0) & (positions < logged.shape[1])
    out = logged[series[:, None], np.clip(positions, 0, logged.shape[1] - 1)]
    return np.where(inside, out, np.nan).astype(np.float32)


def inputs(items: Samples, series: np.ndarray, cut: np.ndarray) -> tuple[torch.Tensor, ...]:
    enc_pos = cut[:, None] + np.arange(-items.encoder_days, 0)
    dec_pos = cut[:, None] + np.arange(items.steps)
    history = _gather(items.logged, series, enc_pos)
    level = np.nan_to_num(nan_median(history))[:, None]

    def relative(values: np.ndarray) -> list[np.ndarray]:
        return [np.nan_to_num(values - level), np.isnan(values).astype(np.float32)]

    def weekday(positions: np.ndarray) -> list[np.ndarray]:
        angle = 2 * np.pi * items.dow[np.clip(positions, 0, len(items.dow) - 1)] / 7
        return [np.sin(angle), np.cos(angle)]

    encoder = np.stack(relative(history) + weekday(enc_pos)
                       + relative(_gather(items.logged, series, enc_pos - YEAR)), axis=-1)
    ahead = np.broadcast_to(np.arange(items.steps, dtype=np.float32) / items.steps, dec_pos.shape)
    decoder = np.stack(weekday(dec_pos) + relative(_gather(items.logged, series, dec_pos - YEAR)) + [ahead], axis=-1)
    return (torch.from_numpy(encoder.astype(np.float32)), torch.from_numpy(decoder.astype(np.float32)),
            torch.from_numpy(items.codes[series].astype(np.int64)), torch.from_numpy(level.astype(np.float32)))


def targets(items: Samples) -> np.ndarray:
    """Each sample's gap + horizon days after its cut-off, relative to its encoder level (NaN = missing)."""
    history = _gather(items.logged, items.series, items.cut[:, None] + np.arange(-items.encoder_days, 0))
    level = np.nan_to_num(nan_median(history))[:, None]
    return _gather(items.logged, items.series, items.cut[:, None] + np.arange(items.steps)) - level


class Seq2Seq(nn.Module):
    def __init__(self, hidden: int, code_sizes: list[int], dropout: float = 0.1):
        super().__init__()
        self.embeddings = nn.ModuleList([nn.Embedding(size + 1, 4) for size in code_sizes])
        static = 4 * len(code_sizes) + 1
        self.encoder = nn.GRU(6 + static, hidden, batch_first=True)
        self.decoder = nn.GRU(5 + static, hidden, batch_first=True)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, 1))

    def forward(self, encoder, decoder, codes, level):
        static = torch.cat([e(codes[:, i]) for i, e in enumerate(self.embeddings)] + [level / 10], dim=-1)
        _, state = self.encoder(torch.cat([encoder, static[:, None].expand(-1, encoder.shape[1], -1)], dim=-1))
        out, _ = self.decoder(torch.cat([decoder, static[:, None].expand(-1, decoder.shape[1], -1)], dim=-1), state)
        return self.head(out).squeeze(-1)


class SampleRegressor(TorchRegressor):
    """The torch estimator for Samples: inputs cut out per batch, the Seq2Seq network."""

    predict_batch = 1024
    _parameter_constraints: dict = {**TorchRegressor._parameter_constraints, "hidden": POSITIVE_INT,
                                    "code_sizes": [tuple, list]}

    def __init__(self, hidden: int = 64, code_sizes: tuple[int, ...] = (1, 1, 1), epochs: int = 10,
                 learning_rate: float = 3e-3, batch_size: int = 256, patience: int = 3, seed: int = 0,
                 device: str | None = None, progress: bool = True):
        super().__init__(epochs=epochs, learning_rate=learning_rate, batch_size=batch_size, patience=patience,
                         seed=seed, device=device, progress=progress, weight_decay=0.0)
        self.hidden = hidden
        self.code_sizes = code_sizes

    def build_network(self, n_outputs: int):
        return Seq2Seq(self.hidden, list(self.code_sizes))

    def encode(self, X: Samples) -> Samples:
        return X

    def collate(self, items, rows: np.ndarray, train: bool) -> tuple:
        series, cut = items[rows]
        base = items.items if hasattr(items, "items") else items
        return tuple(t.to(self.device_) for t in inputs(base, np.asarray(series), np.asarray(cut)))


class Seq2SeqForecaster(Checked, RegressorMixin, BaseEstimator):
    """The forecaster the recipes use: samples past cut-offs of the history, fits SampleRegressor, forecasts."""

    _parameter_constraints: dict = {
        "epochs": POSITIVE_INT, "hidden": POSITIVE_INT, "encoder_days": POSITIVE_INT, "batch_size": POSITIVE_INT,
        "learning_rate": POSITIVE, "samples_per_series": POSITIVE_INT, "max_series": POSITIVE_INT,
        "seed": NON_NEGATIVE_INT, "device": OPTIONAL_TEXT, "progress": BOOLEAN,
    }

    def __init__(self, epochs: int = 12, hidden: int = 64, encoder_days: int = 112, batch_size: int = 256,
                 learning_rate: float = 3e-3, samples_per_series: int = 4, max_series: int = 40_000,
                 seed: int = 0, device: str | None = None, progress: bool = True):
        self.epochs = epochs
        self.hidden = hidden
        self.encoder_days = encoder_days
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.samples_per_series = samples_per_series
        self.max_series = max_series
        self.seed = seed
        self.device = device
        self.progress = progress

    def _items(self, task: ForecastTask, series: np.ndarray, cut: np.ndarray) -> Samples:
        logged = log_history(task.history)
        steps = task.gap + len(task.dates)
        days = len(task.history.dates) + steps
        dow = ((task.history.dates[0].day_of_week + np.arange(days)) % 7).astype(np.int64)
        return Samples(logged, dow, static_codes(task) + 1, series, cut, self.encoder_days, steps)

    def fit(self, task: ForecastTask, y=None) -> "Seq2SeqForecaster":
        self._validate_params()
        rng = np.random.default_rng(self.seed)
        length = len(task.history.dates)
        steps = task.gap + len(task.dates)
        latest = length - steps  # the newest cut-off whose days to forecast are all known
        if latest < 28:  # the oldest backtest windows of a long --folds have the shortest history
            raise UsageError(f"{length} days of history are too few for the sequence model ({steps + 28} needed: 28 "
                             f"to encode, then {steps} to forecast); use fewer --folds, so the oldest window has "
                             f"more history before it")
        known = ~np.isnan(task.history.values).all(axis=1)
        pages = np.flatnonzero(known)
        if len(pages) > self.max_series:
            pages = np.sort(rng.choice(pages, self.max_series, replace=False))
        series = np.repeat(pages, self.samples_per_series)
        # half the cut-offs in the last quarter of the history (the regime the forecast starts from), half anywhere
        recent = rng.integers(max(28, latest - length // 4), latest + 1, len(series))
        anywhere = rng.integers(28, latest + 1, len(series))
        cut = np.where(rng.random(len(series)) < 0.5, recent, anywhere)
        items = self._items(task, series, cut)
        codes = static_codes(task)
        self.model_ = SampleRegressor(self.hidden, tuple(int(c) + 1 for c in codes.max(axis=0)), self.epochs,
                                      self.learning_rate, self.batch_size, seed=self.seed, device=self.device,
                                      progress=self.progress)
        self.model_.fit(items, targets(items))
        return self

    def predict(self, task: ForecastTask) -> np.ndarray:
        n, length = len(task), len(task.history.dates)
        items = self._items(task, np.arange(n), np.full(n, length))
        history = _gather(items.logged, items.series, items.cut[:, None] + np.arange(-self.encoder_days, 0))
        level = np.nan_to_num(nan_median(history))[:, None]
        out = self.model_.predict(items)[:, task.gap:]
        forecast = np.clip(np.expm1(level + out), 0, None).astype(np.float32)
        forecast[np.isnan(items.logged).all(axis=1)] = 0
        return forecast
