#!/usr/bin/env python
"""Measure tuning-storage overhead: trials per minute of a trivial objective (TPE sampler) on each storage the
toolkit opens (``common.storages.open_storage``: the flock-locked journal file, SQLite with its busy timeout,
PostgreSQL with heartbeats), and the time per trial as a multiple of Optuna's in-memory storage. For BENCHMARKS.md.

    python scripts/bench_storage.py --trials 300 [--postgres postgresql://user@host/db]
"""

import tempfile
import time
from pathlib import Path

import _checkout  # noqa: F401  (the code beside this script, wherever the .venv was made)
import optuna
from optuna.storages import BaseStorage, InMemoryStorage

from common.cli import Parser, parse_args, positive_arg, run_main
from common.storages import open_storage


def trials_per_minute(storage: BaseStorage, n_trials: int) -> float:
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.TPESampler(seed=0))
    started = time.perf_counter()
    study.optimize(lambda t: t.suggest_float("x", -10, 10) ** 2, n_trials=n_trials)
    return n_trials / (time.perf_counter() - started) * 60


def main() -> int:
    parser = Parser(__doc__)
    parser.add_argument("--trials", type=positive_arg, default=300)
    parser.add_argument("--postgres", help="a PostgreSQL URL to include (an empty database: a study is added to it)")
    args = parse_args(parser)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        urls = {"journal file (default)": str(Path(tmp) / "optuna.journal"), "sqlite": f"sqlite:///{tmp}/optuna.db"}
        if args.postgres:
            urls["postgresql"] = args.postgres
        # every storage is opened before any is timed: an unreachable database fails at once, in one line
        storages: dict[str, BaseStorage] = {"in-memory": InMemoryStorage()}
        storages.update({name: open_storage(url, "bench")[0] for name, url in urls.items()})
        base = None
        for name, storage in storages.items():
            rate = trials_per_minute(storage, args.trials)
            base = base or rate
            print(f"{name:24s} {rate:9.0f} trials/min   {base / rate:6.2f}x the in-memory time per trial", flush=True)
    return 0


if __name__ == "__main__":
    run_main(main)
