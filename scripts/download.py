#!/usr/bin/env python
"""Get a competition's files (local mirror, Kaggle notebook input, verified cache or the Kaggle API), check them,
and print where they are.

    python scripts/download.py titanic
    KAGGLE_DATA_DIR=../shared/kaggle python scripts/download.py digit-recognizer
"""


import _checkout  # noqa: F401  (the code beside this script, wherever the .venv was made)

import competitions
from common import data
from common.cli import Parser, parse_args, run_main


def main() -> int:
    parser = Parser(__doc__)
    parser.add_argument("competition", help=f"one of: {', '.join(competitions.names())}")
    parser.add_argument("--data-dir", help="local mirror holding <slug>/ or <slug>.zip, or that zip itself")
    parser.add_argument("--force", action="store_true", help="download again even if the cache is valid")
    args = parse_args(parser)
    comp = competitions.get(args.competition)
    files, dataset = data.load(comp, args.data_dir, force_download=args.force)  # files, columns, dtypes, ids
    print(f"{comp.name}: {len(dataset.train)} train rows, {len(dataset.test)} test rows in {files.folder} "
          f"(from {files.source})")
    for name, digest in files.sha256.items():
        print(f"  {name}  sha256 {digest[:16]}")
    return 0


if __name__ == "__main__":
    run_main(main)
