#!/usr/bin/env python
"""Web Traffic at the real competition's size: build a stage-2 style mirror of 145 063 pages x 803 days from the
replica's real pages (resampled, noise added, the same share of missing days), then time a recipe on it and
report wall time and peak memory (RSS of the training process and its children).

    python scripts/bench_web_traffic.py --out /tmp/wt-full            # build once (never commit it), then run
    python scripts/bench_web_traffic.py --out /tmp/wt-full --recipe median           # the same mirror again
    python scripts/bench_web_traffic.py --out /tmp/wt-20k --pages 20000 --build-only # a smaller one beside it

The files are written as Kaggle names them for stage 2 (train_2.csv, key_2.csv, sample_submission_2.csv; the
forecast starts two days after train ends, 62 days), so the run goes through ``web-traffic-stage2``.
"""

import json
import logging
import resource
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import _checkout  # noqa: F401  (the code beside this script, wherever the .venv was made)
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from common.cli import Parser, folds_arg, parse_args, positive_arg, run_main
from common.data import DataFiles
from common.errors import UsageError
from common.io import write_json_atomic
from competitions.web_traffic.files import STAGES, read_train

log = logging.getLogger("bench_web_traffic")
SLUG = "web-traffic-time-series-forecasting"
ROOT = Path(__file__).resolve().parents[1]
FULL_SIZE = {"pages": 145_063, "days": 803, "horizon": 62}  # stage 2 of the real competition
MARK = "bench-mirror.json"  # the size of a finished mirror, beside its <slug>/ folder


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
    parser = Parser(__doc__)
    parser.add_argument("--out", required=True, help="folder for the generated mirror (outside the repo)")
    parser.add_argument("--shared", default=str(ROOT.parent / "shared" / "kaggle"), help="the local Kaggle mirror")
    for name, full in FULL_SIZE.items():
        parser.add_argument(f"--{name}", type=positive_arg,
                            help=f"size of the mirror to build (default {full:,}; a mirror built before keeps its own)")
    parser.add_argument("--recipe", default="default")
    parser.add_argument("--folds", type=folds_arg, default=5)
    parser.add_argument("--build-only", action="store_true")
    args = parse_args(parser)
    out = Path(args.out)
    size = mirror(out, Path(args.shared), {name: getattr(args, name) for name in FULL_SIZE})
    if args.build_only:
        return 0
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), "web-traffic-stage2", "--recipe",
                           args.recipe, "--folds", str(args.folds), "--data-dir", str(out)], cwd=ROOT)
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 ** 2  # KiB -> GiB
    print(f"web-traffic-stage2 {args.recipe}: exit {done.returncode}, wall {wall / 60:.1f} min, "
          f"peak RSS {peak:.2f} GB ({size['pages']} pages x {size['days']} days)")
    return done.returncode


def mirror(out: Path, shared: Path, asked: dict[str, int | None]) -> dict[str, int]:
    """The mirror in ``out``: the one built there before (its size recorded in MARK, written last, so a build cut
    short is built again) if it has the size asked for, else a new one. Returns its size."""
    mark = out / MARK
    if mark.is_file():
        built = json.loads(mark.read_text())
        differ = {name: value for name, value in asked.items() if value is not None and value != built.get(name)}
        if differ:
            asked_words = ", ".join(_size_words(differ))
            raise UsageError(f"{out} holds a mirror of {built['pages']} pages x {built['days']} days (horizon "
                             f"{built['horizon']}), not the {asked_words} asked for; give another --out, or remove "
                             "that folder to build it again")
        log.info("using the mirror built before in %s: %d pages x %d days", out, built["pages"], built["days"])
        return built
    size = {name: FULL_SIZE[name] if value is None else value for name, value in asked.items()}
    started = time.perf_counter()
    build(shared, out, size["pages"], size["days"], size["horizon"], seed=0)
    write_json_atomic(mark, size)
    log.info("built in %.0f s", time.perf_counter() - started)
    return size


def _size_words(size: dict[str, int]) -> list[str]:
    return [f"horizon {value}" if name == "horizon" else f"{value} {name}" for name, value in size.items()]


if __name__ == "__main__":
    run_main(main)
