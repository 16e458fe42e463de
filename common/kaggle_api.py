"""The only module that imports the official ``kaggle`` client (lazily, so nothing else pays for it).

Every failure becomes one KaggleApiError line that says what to do: where credentials go (401), which rules page
to accept (403), or that Kaggle failed after a bounded number of retries (5xx).
"""

import contextlib
import io
import logging
import os
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

from common.errors import KaggleApiError

log = logging.getLogger(__name__)

CREDENTIALS_HELP = (
    "put your API token in ~/.kaggle/kaggle.json ({\"username\": ..., \"key\": ...}, chmod 600), or set "
    "KAGGLE_API_TOKEN, or KAGGLE_USERNAME and KAGGLE_KEY (create a token at https://www.kaggle.com/settings/api)"
)
RETRIES = 3
PAGE_SIZE = 100  # submissions asked for per page of the list (Kaggle may give fewer)
MAX_PAGES = 100  # pages of the list read at most: 2 000 to 10 000 submissions
PARTIAL_MARKER = ".kaggle-partial"  # the client's note beside a part-downloaded file: which remote file it is


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


def warn_if_token_readable() -> list[Path]:
    """The client prints its own warning about a token file others can read, but that print is captured with the
    rest of its import noise: say it ourselves, with the fix. Not on Windows, whose files have no such mode bits
    (every file there reads as 0o666)."""
    exposed: list[Path] = []
    if os.name != "posix":
        return exposed
    for folder in _config_dirs():
        token = folder / "kaggle.json"
        try:
            mode = token.stat().st_mode
        except OSError:
            continue
        if mode & 0o077:
            log.warning("your Kaggle API token %s is readable by other users; protect it: chmod 600 %s", token, token)
            exposed.append(token)
    return exposed


def require_credentials(then: str = "") -> None:
    """One line saying where credentials go when there are none (the official client would print its help and exit
    the process); ``then``: what else the user can do, appended."""
    if not has_credentials():
        raise KaggleApiError(f"no Kaggle credentials: {CREDENTIALS_HELP}{then}")


# One authenticated client per set of credentials, with when it authenticated; kept for CLIENT_SECONDS, below the
# life of an OAuth access token (a wait for a score polls for 15 minutes, or as long as --timeout says).
_CLIENTS: dict[tuple[str | None, ...], tuple[Any, float]] = {}
CLIENT_SECONDS = 600


def _client(then: str = ""):
    """The official client, authenticated once in a while rather than for every call: a submit lists, asks the
    limits and uploads, and each authentication of a token is a round trip to Kaggle (the readable-token warning is
    said once per process)."""
    require_credentials(then)
    key = tuple(os.environ.get(name) for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN",
                                                  "KAGGLE_CONFIG_DIR", "KAGGLE_API_ENVIRONMENT"))
    if key not in _CLIENTS:
        warn_if_token_readable()
    elif time.monotonic() - _CLIENTS[key][1] < CLIENT_SECONDS:
        return _CLIENTS[key][0]
    _CLIENTS[key] = (_authenticated(), time.monotonic())
    return _CLIENTS[key][0]


def _authenticated():
    # Importing the package authenticates eagerly and prints help on failure; keep that noise off the terminal.
    with contextlib.redirect_stdout(io.StringIO()):
        from kaggle.api.kaggle_api_extended import KaggleApi

        api = KaggleApi()
        try:
            api.authenticate()
        except SystemExit as exc:
            raise KaggleApiError(f"Kaggle rejected the credentials: {CREDENTIALS_HELP}") from exc
        except Exception as exc:  # noqa: BLE001 - a token is checked online: network and HTTP errors land here
            raise _auth_error(exc) from exc
    return api


def _auth_error(exc: Exception) -> KaggleApiError:
    import requests

    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        if exc.response.status_code in (401, 403):
            return KaggleApiError(f"Kaggle rejected the credentials ({exc.response.status_code}): {CREDENTIALS_HELP}")
        return KaggleApiError(f"Kaggle answered {exc.response.status_code} while checking the credentials; "
                              f"{OFFLINE_HELP}")
    return KaggleApiError(f"{_describe(exc)} while checking the credentials; {OFFLINE_HELP}")


OFFLINE_HELP = "check the network and try again, or use local files (--data-dir / KAGGLE_DATA_DIR)"


def _describe(exc: Exception) -> str:
    """A network failure in a few words (requests' own text runs to several hundred characters)."""
    import requests

    if isinstance(exc, requests.ConnectionError | requests.Timeout):
        url = getattr(getattr(exc, "request", None), "url", None) or ""
        host = url.split("/")[2] if url.count("/") >= 2 else "Kaggle"
        return f"cannot reach {host} ({'timed out' if isinstance(exc, requests.Timeout) else 'no connection'})"
    return str(exc)


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
    if isinstance(exc, requests.ConnectionError | requests.Timeout | ConnectionError | TimeoutError):
        return None  # the network's failure (a reset mid-download reaches here as the socket's own error)
    return KaggleApiError(f"Kaggle client failed while trying to {action}: {exc}")


def _machine_refused(exc: Exception) -> bool:
    """This machine's file system refused (disk full, no permission), which the CLI reports as its own (exit 7)."""
    import errno

    import requests

    return (isinstance(exc, OSError) and not isinstance(exc, requests.RequestException | ConnectionError)
            and exc.errno in {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EFBIG})


def call_with_retries(fn, slug: str, action: str, retries: int = RETRIES, backoff: float = 1.0):
    """Run ``fn()``; retry transient failures (5xx, 429, network) a bounded number of times."""
    for attempt in range(1, retries + 1):
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - the client raises many types; _explain sorts them
            if _machine_refused(exc):  # a full disk is not Kaggle's failure, nor worth asking Kaggle again
                raise
            error = _explain(exc, slug, action)
            if error is not None:
                raise error from exc
            if attempt == retries:
                raise KaggleApiError(f"Kaggle kept failing while trying to {action} ({_describe(exc)}) after "
                                     f"{retries} attempts; {OFFLINE_HELP}") from exc
            log.warning("Kaggle failed (%s); retry %d/%d", _describe(exc), attempt, retries - 1)
            time.sleep(backoff * attempt)


def download_competition(slug: str, dest: Path, resume: bool = True) -> Path:
    """Download the competition's files (one zip) into ``dest`` and return its path. ``resume``: a part left in
    ``dest`` by an interrupted download is continued (the client asks for the missing byte range, and only while its
    ``.kaggle-partial`` marker shows the remote file unchanged: ETag and size), and a complete copy is not fetched
    again; without it the file is downloaded anew."""
    # a user without a token may well have the files: name both ways
    api = _client("; or, with the competition's files already on disk, point --data-dir (or KAGGLE_DATA_DIR) at them")
    log.info("downloading %s through the Kaggle API", slug)
    call_with_retries(lambda: api.competition_download_files(slug, path=str(dest), force=not resume, quiet=False),
                      slug, f"download {slug}")
    found = sorted(p for p in dest.iterdir()
                   if p.is_file() and p.name.startswith(slug) and not p.name.endswith(PARTIAL_MARKER))
    if not found:
        raise KaggleApiError(f"Kaggle download of {slug} produced no file in {dest}")
    return found[0]


def _daily_limit(message: str) -> bool:
    text = message.lower()
    return "daily" in text and ("allowance" in text or "limit" in text)


def list_submissions(slug: str, refs: Collection[int] = ()) -> list[dict]:
    """The user's submissions to a competition, newest first, as plain dicts: the newest page, or as many pages as it
    takes to list every submission in ``refs``. Kaggle hands the list out a page at a time, and its page size has
    been 20, 50 or 100 whatever was asked, so an old submission (a score to sync after many submissions made
    elsewhere) can lie pages back. A ref Kaggle does not list (another account's) stops the reading once the pages
    reach older ones."""
    api = _client()
    wanted, out, tokens = set(refs), [], [""]
    while len(tokens) <= MAX_PAGES:
        rows, token = call_with_retries(lambda: _submissions_page(api, slug, tokens[-1]), slug,
                                        f"list submissions of {slug}")
        out += [_submission(s) for s in rows if s is not None]
        wanted -= {s["ref"] for s in out}
        # refs grow with time and the list is newest first: one wanted ref above the oldest listed is not there
        if not wanted or not out or min(s["ref"] for s in out) < min(wanted) or not token or token in tokens:
            break
        tokens.append(token)
    return out


def _submissions_page(api, slug: str, token: str) -> tuple[list, str]:
    """One page of the list and the token of the next ("" after the last). The client's own call drops that token,
    so the request is the one it builds, sent through its SDK."""
    from kagglesdk.competitions.types.competition_api_service import ApiListSubmissionsRequest
    from kagglesdk.competitions.types.competition_enums import SubmissionGroup, SubmissionSortBy

    request = ApiListSubmissionsRequest()
    request.competition_name = slug
    request.group = SubmissionGroup.SUBMISSION_GROUP_ALL
    request.sort_by = SubmissionSortBy.SUBMISSION_SORT_BY_DATE
    request.page_size = PAGE_SIZE
    request.page_token = token
    with api.build_kaggle_client() as kaggle:
        response = kaggle.competitions.competition_api_client.list_submissions(request)
    return response.submissions or [], getattr(response, "next_page_token", "") or ""


def _submission(s) -> dict:
    return {
        "ref": int(s.ref), "date": s.date.isoformat() if s.date else None, "description": s.description or "",
        "file_name": s.file_name, "status": getattr(s.status, "name", str(s.status)),
        "public_score": _score(s.public_score), "private_score": _score(s.private_score),
        "error": s.error_description or None,
    }


def submission_limits(slug: str) -> dict[str, int] | None:
    """The user's submissions to the competition since 00:00 UTC and how many more Kaggle allows today (``today``,
    ``total``, ``left``, ``by_total``: the lifetime cap is what limits). None where Kaggle does not say (a user not on
    a team yet gets zeros; an endpoint or network blip): it only helps, so it never stops a submit."""
    api = _client()
    try:
        limits = api.competition_get_submission_limits(slug)
    except Exception as exc:  # noqa: BLE001 - the submit itself reports Kaggle's failures
        log.debug("Kaggle gave no submission limits for %s: %s", slug, exc)
        return None
    found = {"today": int(limits.num_today), "total": int(limits.num_total), "left": int(limits.num_allowed_now),
             "by_total": int(bool(limits.limited_by_total))}
    return None if not any(found.values()) else found


def _score(value) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


def submit(slug: str, path: Path, message: str, floor: int | None = None) -> int:
    """Upload a submission file; returns Kaggle's submission ref.

    Transient failures are retried a bounded number of times, but never blindly: before each retry the user's
    submissions are listed and a submission newer than the upload's start carrying this exact message counts as
    done, so a retry can never create a duplicate (and a file sent again with --again, whose message an earlier
    submission already carries, is not taken for that one). ``floor``: the newest ref listed just before the
    upload, when the caller has listed them already; else they are listed here.
    """
    api = _client()
    if floor is None:  # refs grow: a submission made by this upload is above it
        floor = max((s["ref"] for s in list_submissions(slug)), default=0)
    for attempt in range(1, RETRIES + 1):
        try:
            response = api.competition_submit(str(path), message, slug, quiet=True)
        except Exception as exc:  # noqa: BLE001 - sorted by _explain
            error = _explain(exc, slug, f"submit to {slug}")
            if error is not None:
                raise _limit_or(error, exc) from exc
            log.warning("submission to %s failed (%s); checking whether it arrived before retrying", slug, exc)
        else:
            ref = int(getattr(response, "ref", 0) or 0)
            if ref:
                return ref
            text = getattr(response, "message", "") or "no submission reference returned"
            if _daily_limit(text):
                raise KaggleApiError(f"daily submission limit reached for {slug}: {text}; nothing was submitted")
            log.warning("Kaggle did not accept the upload (%s)", text)
        existing = [s for s in list_submissions(slug) if s["description"] == message and s["ref"] > floor]
        if existing:
            return existing[0]["ref"]
        if attempt < RETRIES:
            time.sleep(attempt)
    raise KaggleApiError(f"submitting to {slug} kept failing after {RETRIES} attempts; nothing was submitted; "
                         "try again later")


def _limit_or(error: KaggleApiError, exc: Exception) -> KaggleApiError:
    if _daily_limit(str(exc)) or _daily_limit(str(error)):
        return KaggleApiError(f"daily submission limit reached: {exc}; nothing was submitted - try again after "
                              "midnight UTC")
    return error
