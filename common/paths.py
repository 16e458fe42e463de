"""Where the toolkit keeps its data cache, folds, runs and submissions.

Everything lives under one home folder (the current directory unless ``KIT_HOME`` says otherwise) so a test or a
second experiment can use its own without touching the user's runs.
"""

import os
from pathlib import Path


def home() -> Path:
    """KIT_HOME="~/kaggle" (quoted, or from a Makefile) is the home folder's kaggle, not a folder named "~"."""
    return Path(os.environ.get("KIT_HOME") or Path.cwd()).expanduser().resolve()


def data_cache(slug: str) -> Path:
    return home() / "data" / slug


def download_dir(slug: str) -> Path:
    """Where a download from the Kaggle API lands, kept after an interruption so the next run resumes it."""
    return home() / "data" / f".download-{slug}"


def partial_downloads(since: float = 0.0) -> list[Path]:
    """The ``download_dir`` folders an interruption left holding bytes (written to at ``since`` or later) that the
    next run resumes from: the client's ``.kaggle-partial`` marker says which remote file they are part of (a
    complete download kept for another stage has none)."""
    from common.kaggle_api import PARTIAL_MARKER  # the client itself is imported only where a call needs it

    def partial(folder: Path) -> bool:
        files = [f for f in folder.iterdir() if f.is_file()]
        parts = [f for f in files if not f.name.endswith(PARTIAL_MARKER)]
        return len(parts) < len(files) and any(f.stat().st_size and f.stat().st_mtime >= since for f in parts)

    try:
        return sorted(p for p in (home() / "data").glob(".download-*") if p.is_dir() and partial(p))
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
