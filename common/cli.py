"""What every script shares: logging set-up, option types checked before any work starts, and turning errors into
one line plus a meaningful exit code.

Exit codes: 0 ok, 1 unexpected error, 2 usage (unknown competition/recipe, bad option), 3 data problem,
4 Kaggle API refused or failed, 5 submission invalid, 6 tuning storage problem, 7 file system (permission, disk
full, missing folder), 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).
"""

import argparse
import logging
import signal
import sys
from collections.abc import Callable

from common.errors import FileSystemError, KitError, describe_os_error

MAX_SEED = 2**32 - 1  # numpy, scikit-learn and LightGBM all take seeds in [0, 2**32)
MIN_FOLDS, MAX_FOLDS = 2, 20


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is so that it unwinds exactly like Ctrl-C: temp files and half-written
    runs are removed on the way out."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    for noisy in ("urllib3", "requests", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def seed_arg(text: str) -> int:
    """argparse type of --seed: refused before any work starts rather than deep inside a model."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number (0..{MAX_SEED})") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"{value} is out of range; seeds are 0..{MAX_SEED}")
    return value


def folds_arg(text: str) -> int:
    """argparse type of --folds: 2..20. More folds than that score a handful of rows each, and such a noisy CV
    could win "best run" by luck."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number ({MIN_FOLDS}..{MAX_FOLDS})") from None
    if not MIN_FOLDS <= value <= MAX_FOLDS:
        raise argparse.ArgumentTypeError(f"{value} is out of range; use {MIN_FOLDS}..{MAX_FOLDS} folds")
    return value


def scored_arg(text: str) -> int | str:
    """argparse type of --folds-scored: 'all' or a number of folds (1..20)."""
    if text == "all":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither 'all' nor a whole number") from None
    if not 1 <= value <= MAX_FOLDS:
        raise argparse.ArgumentTypeError(f"{value} is out of range; use 1..{MAX_FOLDS} or 'all'")
    return value


def positive_arg(text: str) -> int:
    """argparse type of counts such as --trials and --workers."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def handle_errors(main: Callable[[], int | None]) -> int:
    """Run ``main`` and return its exit code; every error a user can cause becomes one line on stderr."""
    previous = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread: leave signals alone
        previous = None
    try:
        return main() or 0
    except KitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(f"error: {describe_os_error(exc)}", file=sys.stderr)
        return FileSystemError.exit_code
    except Terminated:
        print("terminated: nothing half-written was kept", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("interrupted: nothing half-written was kept", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def run_main(main: Callable[[], int | None]) -> None:
    sys.exit(handle_errors(main))
