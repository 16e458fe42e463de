"""Shared fixtures: real competition files from ../shared/kaggle, an isolated toolkit home, the fake Kaggle.

With CI=true a missing data folder or an unavailable port 80 fails the run instead of skipping.
"""

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# `pytest -n N` (pytest-xdist; `make test` runs one worker per core): each worker, and every script it starts, gets
# its share of the cores. Two workers each running torch or LightGBM on every core would fight over them and each
# run several times slower. Set here, before any test imports torch, which reads OMP_NUM_THREADS once.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    for _var in ("KIT_THREADS", "OMP_NUM_THREADS"):
        os.environ.setdefault(_var, str(max(1, (os.cpu_count() or 1) // _WORKERS)))

# The kaggle client's LOCALHOST environment is always localhost:80, one port for every test process on the machine.
PORT_80_LOCK = Path(tempfile.gettempdir()) / "kaggle-starter-kit-tests-localhost-80.lock"


def flock_is_held(path: Path | str) -> bool:
    """Whether some open file holds an exclusive ``flock`` on ``path`` (this process's own other descriptors too)."""
    import fcntl

    with open(path, "a") as probe:
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(probe, fcntl.LOCK_UN)
        return False


@contextlib.contextmanager
def sigint_as_from_a_terminal():
    """Children started inside get SIGINT at its default, as from a terminal. A child inherits an ignored SIGINT
    (pytest started as a background job without job control has one), and Python then leaves it ignored: a test
    that sends Ctrl-C would wait for a child that never sees it."""
    previous = signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


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
    from common import data  # a machine that happens to have /kaggle/input must not feed the tests

    monkeypatch.setattr(data, "KAGGLE_INPUT", tmp_path / "no-kaggle-input")
    from common import resume  # runs a test left unfinished (interrupted on purpose) are not this test's to count

    monkeypatch.setattr(resume, "_unfinished", [])
    return home


@pytest.fixture
def data_dir(shared_kaggle, monkeypatch) -> Path:
    monkeypatch.setenv("KAGGLE_DATA_DIR", str(shared_kaggle))
    return shared_kaggle


@pytest.fixture
def mirror_copy(shared_kaggle, tmp_path, monkeypatch):
    """Copy one competition's files into a private mirror (for tests that damage them) and point
    KAGGLE_DATA_DIR at it: ``folder = mirror_copy(slug)``."""
    import shutil

    def copy(slug: str) -> Path:
        target = tmp_path / "mirror"
        shutil.copytree(shared_kaggle / slug, target / slug)
        monkeypatch.setenv("KAGGLE_DATA_DIR", str(target))
        return target / slug

    return copy


@pytest.fixture
def port_80():
    """Tests on the fake Kaggle, and the ones that count on nothing listening there, take port 80 one at a time:
    across pytest-xdist's workers and across two test sessions at once (a kernel lock, gone with its process). Taken
    by ``fake_kaggle`` itself, so that the fixtures a test names before it (training runs) are made outside the lock,
    while the other worker may use the port."""
    from common.io import FileLock

    lock = FileLock(PORT_80_LOCK)
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


@pytest.fixture
def fake_kaggle(shared_kaggle, port_80):
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


def env_for(kit_home: Path, fake=None, data_dir: Path | None = None, **kw) -> dict[str, str]:
    """A script's environment: the isolated home, the fake Kaggle (if any), the local mirror (if given)."""
    env = kaggle_env(kit_home, fake, **kw)
    if data_dir is not None:
        env["KAGGLE_DATA_DIR"] = str(data_dir)
    return env


def run_script(script: str, *args: str, env: dict[str, str] | None = None, timeout: float = 300):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / script), *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=ROOT)


def kill_at_first_checkpoint(script: str, args: list[str], root: Path, env: dict[str, str],
                             timeout: float = 600) -> None:
    """Run ``python -c script *args`` (a fit writing checkpoints under ``root``) and kill -9 it as soon as its first
    checkpoint exists: the kill half of every kill-and-resume test."""
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-c", script, *args], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while time.time() < deadline and not list(root.glob("*/checkpoint.pt")):
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert list(root.glob("*/checkpoint.pt")), "no checkpoint was written before the kill"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL: ``KIT_TEST_POSTGRES_URL`` (a server database URL) if set, else a throwaway cluster
    started from the Debian ``postgresql`` binaries (``.ci/run`` installs them). Yields the admin URL."""
    import shutil
    import tempfile

    url = os.environ.get("KIT_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    initdbs = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not initdbs:
        skip_or_fail("PostgreSQL is not installed (apt-get install postgresql) and KIT_TEST_POSTGRES_URL is unset")
    bindir = initdbs[-1].parent
    datadir = Path(tempfile.mkdtemp(prefix="kit-pg-"))
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(datadir, "postgres", "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    port = _free_port()

    def pg(*cmd: str) -> None:
        subprocess.run([*as_postgres, *cmd], check=True, capture_output=True, timeout=120)

    pg(str(bindir / "initdb"), "-D", str(datadir / "data"), "-A", "trust", "-U", "postgres", "--no-sync")
    pg(str(bindir / "pg_ctl"), "-D", str(datadir / "data"), "-l", str(datadir / "log"), "-w", "-o",
       f"-p {port} -k {datadir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200", "start")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"  # as users write it: the default driver
    finally:
        subprocess.run([*as_postgres, str(bindir / "pg_ctl"), "-D", str(datadir / "data"), "-m", "fast", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(datadir, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server):
    """A fresh database on the server for one test."""
    import uuid

    import psycopg
    import sqlalchemy

    admin = sqlalchemy.engine.make_url(postgres_server)
    name = f"kit_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(host=admin.host, port=admin.port, user=admin.username, password=admin.password,
                         dbname=admin.database, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return admin.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(params=["journal", "postgresql"])
def storage_url(request):
    """Every tuning test runs on the embedded journal storage and on a real PostgreSQL."""
    if request.param == "journal":
        return None
    return request.getfixturevalue("postgres_url")
