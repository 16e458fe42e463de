"""Errors the scripts turn into one clear line and a meaningful exit code."""

import numpy as np


def cell(value: object) -> str:
    """A value from a table as a user wrote it, for an error line: -5.0 or 'abc', not numpy's np.float64(-5.0); a
    gap (read as NaN) is "nothing", as the file has it."""
    if isinstance(value, float | np.floating) and np.isnan(value):
        return "nothing"
    return repr(value.item() if isinstance(value, np.generic) else value)


def did_you_mean(name: str, choices) -> str:
    """" (did you mean 'titanic'?)" for a typo close to one of ``choices``, else "": the one choice the name begins
    (``digit`` -> 'digit-recognizer'), or the one suggestion difflib finds closest, so an error line about an
    unknown name points at the likely fix first."""
    import difflib

    lowered = {str(c).lower(): c for c in choices}
    typed = str(name).lower()
    begun = [c for low, c in lowered.items() if typed and low.startswith(typed)]
    if len(begun) == 1:
        return f" (did you mean {begun[0]!r}?)"
    close = difflib.get_close_matches(typed, list(lowered), n=1, cutoff=0.6)
    return f" (did you mean {lowered[close[0]]!r}?)" if close else ""


class KitError(Exception):
    """Base of every error a user can fix; the message says what to do."""

    exit_code = 1


class DataError(KitError):
    """Competition files are missing, corrupt or do not have the expected shape."""

    exit_code = 3


class KaggleApiError(KitError):
    """The Kaggle API refused or failed (credentials, rules, server errors)."""

    exit_code = 4


class SubmissionError(KitError):
    """A submission would not be accepted by Kaggle; nothing was written."""

    exit_code = 5


class UsageError(KitError):
    """Unknown competition, recipe or option value."""

    exit_code = 2


class TuningError(KitError):
    """The tuning storage cannot be reached or holds a study that does not fit this run."""

    exit_code = 6


class FileSystemError(KitError):
    """The operating system refused a read or write (permissions, a full disk, a missing folder)."""

    exit_code = 7


def describe_os_error(exc: OSError) -> str:
    """One line naming the path and what to do, for any OSError the toolkit did not expect."""
    path, reason, hint = os_error_parts(exc)
    return f"cannot use {path}: {reason}; {hint} (nothing half-written was kept)"


def os_error_parts(exc: OSError, then: str | None = None) -> tuple[str, str, str]:
    """What an OSError says to a user: the path, the reason and what to do (``describe_os_error`` joins them).
    ``then``: what to do once it is fixed, where that is not to run the same command again (a run already written
    only needs its copy made)."""
    import errno

    from common.io import destination

    path = destination(str(exc.filename)) if exc.filename else "a file"
    if exc.filename2 and (to := destination(str(exc.filename2))) != path:
        path = f"{path} -> {to}"
    text = str(exc).strip()
    reason = exc.strerror or (text.splitlines()[0] if text else type(exc).__name__)  # a library's own OSError: its text
    again = "run the same command again"
    fixes: dict[int, tuple[str, str | None]] = {  # what fixes it, and what to do then (None: nothing to add)
        errno.EACCES: ("make it writable for you (chmod/chown) or set KIT_HOME to a folder you can write to", None),
        errno.EPERM: ("make it writable for you (chmod/chown) or set KIT_HOME to a folder you can write to", None),
        errno.EROFS: ("the file system is read-only; set KIT_HOME to a writable folder", None),
        errno.ENOSPC: ("the disk is full; free some space", again),
        errno.EDQUOT: ("your disk quota is used up; free some space", again),
        errno.ENOENT: ("it does not exist; check the path (or create the folder)", "run again"),
        errno.ENOTDIR: ("a part of the path is a file, not a folder; check the path (KIT_HOME, --data-dir)", None),
        errno.EISDIR: ("it is a folder where a file was expected; check the path", None),
        errno.EEXIST: ("a file stands where a folder is needed; move it away", again),
    }
    fix, after = fixes.get(exc.errno or 0, ("check the path", again))
    return path, reason, fix if after is None else f"{fix} and {then or after}"
