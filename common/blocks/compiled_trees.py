"""LightGBM prediction over millions of rows, with the trees compiled to machine code (lleaves, through LLVM).

Web Traffic at the competition's size predicts 145 063 pages x 62 days = 9 million rows after each backtest window and
the final fit: LightGBM's own predict took 61 s of them on 2 cores, a third of the whole run; compiled, 6 s to compile
and 10 s to predict (BENCHMARKS.md). The compiled forest adds each tree's value in blocks of trees rather than one by
one, so a prediction may differ from LightGBM's in the 15th digit (measured: at most 4e-15), never more.

Below ``COMPILE_FROM_ROWS`` rows the compile costs more than it saves, and LightGBM predicts. Where lleaves is not
installed or cannot compile (its release needs llvmlite < 0.45, which has no Python 3.14 wheels), LightGBM predicts
too, after one line saying why.
"""

import functools
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# the compile took 5-6 s for 400 trees of 63 leaves and saved 5 s per million rows (2-core Xeon): from about 1.2
# million rows on it pays; 2 million leaves a margin for CPUs that compile slower
COMPILE_FROM_ROWS = 2_000_000
# lleaves copies what it predicts to float64: a million rows at a time keeps that copy at 8 bytes x features x 1e6
CHUNK_ROWS = 1_000_000


def booster_predictor(booster: Any, rows: int, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    """``booster.predict`` of a lightgbm.Booster (its objective's output, as LightGBM gives it) for ``rows`` rows in
    all, given in one array or in parts: compiled once where they are many."""
    if rows >= COMPILE_FROM_ROWS:
        compiled = _compile(booster)
        if compiled is not None:
            return lambda X: np.concatenate([compiled.predict(X[start:start + CHUNK_ROWS], n_jobs=threads)
                                             for start in range(0, len(X), CHUNK_ROWS)])
    return lambda X: booster.predict(X, num_threads=threads)


@functools.cache
def _lleaves() -> Any:
    """The lleaves module, or None - said once per process, not at every prediction."""
    try:
        import lleaves
    except ImportError:
        log.info("lleaves is not installed: LightGBM predicts (slower on millions of rows; make setup installs it)")
        return None
    return lleaves


def _compile(booster: Any) -> Any:
    """The booster compiled by lleaves, or None (and why, in the log) where it cannot be."""
    lleaves = _lleaves()
    if lleaves is None:
        return None
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kit-trees-") as folder:
        path = Path(folder) / "model.txt"
        booster.save_model(path)
        try:
            model = lleaves.Model(model_file=str(path))
            # finline=False: a tenth of the compile time (5 s, not 52 s) for 1.5x slower compiled trees
            model.compile(finline=False)
        except Exception as error:  # an llvmlite it was not made for, an objective it does not know
            log.warning("lleaves could not compile the LightGBM model (%s: %s): LightGBM predicts",
                        type(error).__name__, error)
            return None
    log.info("compiled %d LightGBM trees for prediction in %.1f s", booster.num_trees(), time.perf_counter() - started)
    return model
