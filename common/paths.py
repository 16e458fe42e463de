"""Where the toolkit keeps its data cache, folds, runs and submissions.

Everything lives under one home folder (the current directory unless ``KIT_HOME`` says otherwise) so a test or a
second experiment can use its own without touching the user's runs.
"""

import os
from pathlib import Path


def home() -> Path:
    """KIT_HOME="~/kaggle" (quoted, or from a Makefile) is the home folder's kaggle, not a folder named "~"."""
    return Path(os.environ.get("KIT_HOME") or Path.cwd()).expanduser().resolve()


# Settings that name a folder: a space pasted before or after one would make it another, relative folder.
PATH_SETTINGS = ("KIT_HOME", "KAGGLE_DATA_DIR", "KIT_MODEL_CACHE")


def without_pasted_space(path: str | Path) -> str | None:
    """The path without the spaces around it, when those are surely pasted by mistake (the path as given does not
    exist, e.g. KAGGLE_DATA_DIR=" ~/kaggle" from an env file); else None."""
    text = str(path)
    trimmed = text.strip()
    if not trimmed or trimmed == text or Path(text).expanduser().exists():
        return None
    return trimmed


def data_cache(slug: str) -> Path:
    return home() / "data" / slug


def download_dir(slug: str) -> Path:
    """Where a download from the Kaggle API lands, kept after an interruption so the next run resumes it."""
    return home() / "data" / f".download-{slug}"


def part_download(folder: Path) -> bool:
    """Whether a ``download_dir`` holds a download cut short: the client's ``.kaggle-partial`` marker says which
    remote file its bytes are part of (a whole download, kept for Web Traffic's other stage, has none)."""
    from common.kaggle_api import PARTIAL_MARKER  # the client itself is imported only where a call needs it

    return folder.is_dir() and any(f.name.endswith(PARTIAL_MARKER) for f in folder.iterdir())


def partial_downloads(since: float = 0.0) -> list[Path]:
    """The ``download_dir`` folders an interruption left holding part of a download (bytes written at ``since`` or
    later): the next run resumes from them."""
    from common.kaggle_api import PARTIAL_MARKER

    def recent(folder: Path) -> bool:  # bytes of the file itself, not of the client's marker beside it
        return any(f.is_file() and not f.name.endswith(PARTIAL_MARKER) and f.stat().st_size
                   and f.stat().st_mtime >= since for f in folder.iterdir())

    try:
        return sorted(p for p in (home() / "data").glob(".download-*") if part_download(p) and recent(p))
    except OSError:
        return []


def folds_dir(name: str) -> Path:
    return home() / "folds" / name


def runs_dir(name: str) -> Path:
    return home() / "runs" / name


def resume_dir(name: str) -> Path:
    return home() / "resume" / name


def submissions_dir() -> Path:
    return home() / "submissions"


def submission_file(name: str) -> Path:
    return submissions_dir() / f"{name}.csv"


def shown(path: Path) -> str:
    """``path`` as a user would type it from here: relative to the current directory when inside it, else whole
    (with ``KIT_HOME`` elsewhere, "submissions/x.csv" would point at the wrong file)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
