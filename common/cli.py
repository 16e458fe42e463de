"""What every script shares: logging set-up and turning errors into one line plus a meaningful exit code.

Exit codes: 0 ok, 1 unexpected error, 2 usage (unknown competition/recipe, bad option), 3 data problem,
4 Kaggle API refused or failed, 5 submission invalid, 6 tuning storage problem, 130 interrupted.
"""

import logging
import sys
from collections.abc import Callable

from common.errors import KitError


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    for noisy in ("urllib3", "requests", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run_main(main: Callable[[], int | None]) -> None:
    try:
        code = main() or 0
    except KitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = exc.exit_code
    except KeyboardInterrupt:
        print("interrupted: nothing half-written was kept", file=sys.stderr)
        code = 130
    sys.exit(code)
