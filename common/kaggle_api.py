"""The only module that imports the official ``kaggle`` client (lazily, so nothing else pays for it).

Every failure becomes one KaggleApiError line that says what to do: where credentials go (401), which rules page
to accept (403), or that Kaggle failed after a bounded number of retries (5xx).
"""

import contextlib
import io
import logging
import os
import time
from pathlib import Path

from common.errors import KaggleApiError

log = logging.getLogger(__name__)

CREDENTIALS_HELP = (
    "put your API token in ~/.kaggle/kaggle.json ({\"username\": ..., \"key\": ...}, chmod 600) or set "
    "KAGGLE_USERNAME and KAGGLE_KEY (create a token at https://www.kaggle.com/settings/api)"
)
RETRIES = 3


def rules_url(slug: str) -> str:
    return f"https://www.kaggle.com/c/{slug}/rules"


def _config_dirs() -> list[Path]:
    if os.environ.get("KAGGLE_CONFIG_DIR"):
        return [Path(os.environ["KAGGLE_CONFIG_DIR"])]
    xdg = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return [Path.home() / ".kaggle", xdg / "kaggle"]


def has_credentials() -> bool:
    """Whether any credential the official client understands is present (it exits the process otherwise)."""
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return True
    if os.environ.get("KAGGLE_API_TOKEN"):
        return True
    names = ("kaggle.json", "access_token", "access_token.txt", "credentials.json")
    return any((d / n).is_file() for d in _config_dirs() for n in names)


def _client():
    if not has_credentials():
        raise KaggleApiError(f"no Kaggle credentials: {CREDENTIALS_HELP}")
    # Importing the package authenticates eagerly and prints help on failure; keep that noise off the terminal.
    with contextlib.redirect_stdout(io.StringIO()):
        from kaggle.api.kaggle_api_extended import KaggleApi

        api = KaggleApi()
        try:
            api.authenticate()
        except SystemExit as exc:
            raise KaggleApiError(f"Kaggle rejected the credentials: {CREDENTIALS_HELP}") from exc
    return api


def _explain(exc: Exception, slug: str, action: str) -> KaggleApiError | None:
    """Map a client exception to a user-facing error; None means it may be retried."""
    import requests

    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        status = exc.response.status_code
        if status == 401:
            return KaggleApiError(f"Kaggle answered 401 Unauthorized while trying to {action}: {CREDENTIALS_HELP}")
        if status == 403:
            return KaggleApiError(f"Kaggle answered 403 Forbidden while trying to {action}: accept the "
                                  f"competition rules at {rules_url(slug)} and try again")
        if status == 404:
            return KaggleApiError(f"Kaggle does not know competition {slug!r} (404)")
        if status == 429:
            return None
        if status < 500:
            return KaggleApiError(f"Kaggle answered {status} while trying to {action}: {exc}")
        return None
    if isinstance(exc, requests.ConnectionError | requests.Timeout):
        return None
    return KaggleApiError(f"Kaggle client failed while trying to {action}: {exc}")


def call_with_retries(fn, slug: str, action: str, retries: int = RETRIES, backoff: float = 1.0):
    """Run ``fn()``; retry transient failures (5xx, 429, network) a bounded number of times."""
    for attempt in range(1, retries + 1):
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - the client raises many types; _explain sorts them
            error = _explain(exc, slug, action)
            if error is not None:
                raise error from exc
            if attempt == retries:
                raise KaggleApiError(f"Kaggle kept failing while trying to {action} ({exc}) after {retries} "
                                     "attempts; try again later") from exc
            log.warning("Kaggle failed (%s); retry %d/%d", exc, attempt, retries - 1)
            time.sleep(backoff * attempt)


def download_competition(slug: str, dest: Path) -> Path:
    """Download the competition's files (one zip) into ``dest`` and return its path."""
    api = _client()
    log.info("downloading %s through the Kaggle API", slug)
    call_with_retries(lambda: api.competition_download_files(slug, path=str(dest), force=True, quiet=False),
                      slug, f"download {slug}")
    found = sorted(p for p in dest.iterdir() if p.is_file() and p.name.startswith(slug))
    if not found:
        raise KaggleApiError(f"Kaggle download of {slug} produced no file in {dest}")
    return found[0]
