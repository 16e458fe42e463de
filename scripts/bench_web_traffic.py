#!/usr/bin/env python
"""Web Traffic at the real competition's size: build a stage-2 style mirror of 145 063 pages x 803 days from the
replica's real pages (resampled, noise added, the same share of missing days), then time a recipe on it and
report wall time and peak memory (RSS of the training process and its children).

    python scripts/bench_web_traffic.py --out /tmp/wt-full            # build once (never commit it), then run
    python scripts/bench_web_traffic.py --out /tmp/wt-full --recipe median --pages 20000

The files are written as Kaggle names them for stage 2 (train_2.csv, key_2.csv, sample_submission_2.csv; the
forecast starts two days after train ends, 62 days), so the run goes through ``web-traffic-stage2``.
"""

import argparse
import logging
import resource
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from common.cli import run_main, setup_logging
from common.data import DataFiles
from competitions.web_traffic.files import STAGES, read_train

log = logging.getLogger("bench_web_traffic")
SLUG = "web-traffic-time-series-forecasting"
ROOT = Path(__file__).resolve().parents[1]


def replica_panel(shared: Path, work: Path) -> tuple[pd.DataFrame, np.ndarray]:
    with zipfile.ZipFile(shared / SLUG / f"{SLUG}.zip") as zf:
        zf.extract("train_1.csv", work)
    pages, _, values = read_train(DataFiles(work, "data-dir", {}), "train_1.csv", STAGES[1].specs["train_1.csv"])
    return pages, values


def build(shared: Path, out: Path, n_pages: int, n_days: int, horizon: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    folder = out / SLUG
    folder.mkdir(parents=True, exist_ok=True)
    pages, real = replica_panel(shared, out)
    pick = rng.integers(0, len(pages), n_pages)
    # 803 days from 490: the real days, then the last 313 of them again (a second year), each page scaled and
    # shaken by log-normal noise; missing days stay missing where the real page had them
    repeat = np.concatenate([np.arange(real.shape[1]), np.arange(real.shape[1] - (n_days - real.shape[1]),
                                                                   real.shape[1])])[:n_days]
    values = np.empty((n_pages, n_days), dtype=np.float32)
    for start in range(0, n_pages, 10_000):
        rows = pick[start:start + 10_000]
        block = real[rows][:, repeat]
        scale = np.exp(rng.normal(0, 0.5, (len(rows), 1)))
        noise = np.exp(rng.normal(0, 0.15, block.shape))
        values[start:start + len(rows)] = np.round(block * scale * noise)
    names = pages["Page"].to_numpy()[pick]  # a copy's article gets "~<n>" so every page name stays unique
    unique = pa.array([f"{article}~{i}_{rest}" for i, (article, _, rest) in enumerate(n.partition("_") for n in names)],
                      type=pa.string())
    dates = pd.date_range("2015-07-01", periods=n_days)
    table = {"Page": unique}
    for j, day in enumerate(dates):
        column = values[:, j]
        table[day.date().isoformat()] = pa.array(np.nan_to_num(column).astype(np.int64), mask=np.isnan(column))
    pacsv.write_csv(pa.table(table), folder / "train_2.csv")
    del table
    log.info("train_2.csv: %d pages x %d days, %.1f%% missing", n_pages, n_days, 100 * np.isnan(values).mean())

    future = pd.date_range(dates[-1] + pd.Timedelta(days=3), periods=horizon)  # stage 2: two days skipped
    day_text = pa.array(np.tile([d.date().isoformat() for d in future], n_pages))
    page_text = pc.take(unique, pa.array(np.repeat(np.arange(n_pages), horizon)))
    keys = pc.binary_join_element_wise(page_text, day_text, "_")
    ids = pa.array(np.char.mod("%012x", rng.permutation(n_pages * horizon * 7)[:n_pages * horizon]))
    pacsv.write_csv(pa.table({"Page": keys, "Id": ids}), folder / "key_2.csv")
    pacsv.write_csv(pa.table({"Id": ids, "Visits": pa.array(np.zeros(len(ids), dtype=np.int64))}),
                    folder / "sample_submission_2.csv")
    log.info("key_2.csv: %d rows, %s .. %s", len(ids), future[0].date(), future[-1].date())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for the generated mirror (outside the repo)")
    parser.add_argument("--shared", default=str(ROOT.parent / "shared" / "kaggle"), help="the local Kaggle mirror")
    parser.add_argument("--pages", type=int, default=145_063)
    parser.add_argument("--days", type=int, default=803)
    parser.add_argument("--horizon", type=int, default=62)
    parser.add_argument("--recipe", default="default")
    parser.add_argument("--folds", default="5")
    parser.add_argument("--build-only", action="store_true")
    args = parser.parse_args()
    setup_logging(False)
    out = Path(args.out)
    if not (out / SLUG / "train_2.csv").is_file():
        started = time.perf_counter()
        build(Path(args.shared), out, args.pages, args.days, args.horizon, seed=0)
        log.info("built in %.0f s", time.perf_counter() - started)
    if args.build_only:
        return 0
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), "web-traffic-stage2", "--recipe",
                           args.recipe, "--folds", args.folds, "--data-dir", str(out), "--quiet"], cwd=ROOT)
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 ** 2  # KiB -> GiB
    print(f"web-traffic-stage2 {args.recipe}: exit {done.returncode}, wall {wall / 60:.1f} min, "
          f"peak RSS {peak:.2f} GB ({args.pages} pages x {args.days} days)")
    return done.returncode


if __name__ == "__main__":
    run_main(main)
