#!/usr/bin/env python
"""Measure tuning-storage overhead: trials per minute of a trivial objective (TPE sampler) on each storage, and the
ratio to in-memory. For BENCHMARKS.md.

    python scripts/bench_storage.py --trials 300 [--postgres postgresql://user@host/db]
"""

import argparse
import tempfile
import time
from pathlib import Path

import optuna
from optuna.storages import InMemoryStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalStorage


def trials_per_minute(storage, n_trials: int) -> float:
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.TPESampler(seed=0))
    started = time.perf_counter()
    study.optimize(lambda t: t.suggest_float("x", -10, 10) ** 2, n_trials=n_trials)
    return n_trials / (time.perf_counter() - started) * 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--postgres", help="a PostgreSQL URL to include")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        storages = {
            "in-memory": lambda: InMemoryStorage(),
            "journal file (default)": lambda: JournalStorage(JournalFileBackend(str(Path(tmp) / "j.log"))),
            "sqlite": lambda: RDBStorage(f"sqlite:///{tmp}/s.db"),
        }
        if args.postgres:
            storages["postgresql"] = lambda: RDBStorage(args.postgres)
        base = None
        for name, make in storages.items():
            rate = trials_per_minute(make(), args.trials)
            base = base or rate
            print(f"{name:24s} {rate:9.0f} trials/min   {base / rate:6.2f}x the in-memory time per trial")


if __name__ == "__main__":
    main()
