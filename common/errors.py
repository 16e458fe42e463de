"""Errors the scripts turn into one clear line and a meaningful exit code."""


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
