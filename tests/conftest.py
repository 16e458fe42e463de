"""Shared fixtures: real competition files from ../shared/kaggle, an isolated toolkit home, the fake Kaggle.

With CI=true a missing data folder or an unavailable port 80 fails the run instead of skipping.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def skip_or_fail(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: required, not skipped)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shared_kaggle() -> Path:
    path = Path(os.environ.get("KAGGLE_DATA_DIR") or ROOT.parent / "shared" / "kaggle").resolve()
    if not (path / "titanic").is_dir():
        skip_or_fail(f"real competition files not found at {path}; set KAGGLE_DATA_DIR")
    return path


@pytest.fixture(autouse=True)
def kit_home(tmp_path, monkeypatch) -> Path:
    """Every test gets its own data cache, folds, runs and submissions."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("KIT_HOME", str(home))
    monkeypatch.delenv("KAGGLE_DATA_DIR", raising=False)
    return home


@pytest.fixture
def data_dir(shared_kaggle, monkeypatch) -> Path:
    monkeypatch.setenv("KAGGLE_DATA_DIR", str(shared_kaggle))
    return shared_kaggle


@pytest.fixture
def fake_kaggle(shared_kaggle):
    from fake_kaggle import FakeKaggle

    try:
        server = FakeKaggle(shared_kaggle)
    except OSError as exc:  # port 80 needs root and a free port
        skip_or_fail(f"cannot start the fake Kaggle on localhost:80 ({exc})")
    with server:
        yield server


def kaggle_env(home: Path, fake=None, username: str | None = None, key: str | None = None) -> dict[str, str]:
    """Environment for a subprocess that uses the real kaggle client against the fake server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_")}
    env.update({"KIT_HOME": str(home), "KAGGLE_API_ENVIRONMENT": "LOCALHOST",
                "KAGGLE_CONFIG_DIR": str(home / "kaggle-config")})
    (home / "kaggle-config").mkdir(exist_ok=True)
    if fake is not None:
        env["KAGGLE_USERNAME"] = username or fake.state.username
        env["KAGGLE_KEY"] = key or fake.state.key
    return env


def run_script(script: str, *args: str, env: dict[str, str] | None = None, timeout: float = 300):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / script), *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=ROOT)
