"""The real ``kaggle`` client against our fake Kaggle on localhost:80, end to end through scripts/download.py."""

import json
import subprocess
import sys

import pytest

from conftest import ROOT, kaggle_env, run_script


def test_download_through_the_api(fake_kaggle, kit_home):
    result = run_script("download.py", "titanic", env=kaggle_env(kit_home, fake_kaggle))
    assert result.returncode == 0, result.stderr
    assert "891 train rows, 418 test rows" in result.stdout
    assert "kaggle-api" in result.stdout
    cache = kit_home / "data" / "titanic"
    manifest = json.loads((cache / "MANIFEST.json").read_text())
    assert set(manifest["files"]) == {"train.csv", "test.csv", "gender_submission.csv"}
    assert fake_kaggle.calls("DownloadDataFiles") == [{"competitionName": "titanic"}]
    # A second call is served from the verified cache: no new download.
    again = run_script("download.py", "titanic", env=kaggle_env(kit_home, fake_kaggle))
    assert again.returncode == 0 and "(from cache)" in again.stdout
    assert len(fake_kaggle.calls("DownloadDataFiles")) == 1


def test_force_downloads_again_despite_a_valid_cache(fake_kaggle, kit_home):
    env = kaggle_env(kit_home, fake_kaggle)
    assert run_script("download.py", "titanic", env=env).returncode == 0
    result = run_script("download.py", "titanic", "--force", env=env)
    assert result.returncode == 0, result.stderr
    assert "(from kaggle-api)" in result.stdout
    assert len(fake_kaggle.calls("DownloadDataFiles")) == 2


def test_no_credentials_says_where_to_put_them(fake_kaggle, kit_home):
    # a home of its own: a titanic.zip in the user's ~/Downloads would be named instead
    result = run_script("download.py", "titanic", env={**kaggle_env(kit_home), "HOME": str(kit_home)})
    assert result.returncode == 4
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: no Kaggle credentials")
    assert "kaggle.json" in lines[-1] and "KAGGLE_USERNAME" in lines[-1]
    assert lines[-1].endswith("point --data-dir (or KAGGLE_DATA_DIR) at them")  # the files may be on disk already
    assert "Traceback" not in result.stderr
    assert not fake_kaggle.calls("DownloadDataFiles")


def test_wrong_credentials_401(fake_kaggle, kit_home):
    result = run_script("download.py", "titanic", env=kaggle_env(kit_home, fake_kaggle, key="wrong"))
    assert result.returncode == 4
    last = result.stderr.strip().splitlines()[-1]
    assert "401" in last and "kaggle.json" in last
    assert "Traceback" not in result.stderr
    assert not (kit_home / "data" / "titanic").exists()


def test_rules_not_accepted_403_names_the_rules_page(fake_kaggle, kit_home):
    fake_kaggle.fail("DownloadDataFiles", 403)
    result = run_script("download.py", "titanic", env=kaggle_env(kit_home, fake_kaggle))
    assert result.returncode == 4
    last = result.stderr.strip().splitlines()[-1]
    assert "https://www.kaggle.com/c/titanic/rules" in last
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("status", [500, 429], ids=["server-error", "too-many-requests"])
def test_server_error_is_retried_then_succeeds(fake_kaggle, kit_home, status):
    fake_kaggle.fail("DownloadDataFiles", status, times=1)
    result = run_script("download.py", "titanic", env=kaggle_env(kit_home, fake_kaggle))
    assert result.returncode == 0, result.stderr
    assert len(fake_kaggle.calls("DownloadDataFiles")) == 2


def test_persistent_server_error_fails_clearly(fake_kaggle, kit_home):
    fake_kaggle.fail("DownloadDataFiles", 500)
    result = run_script("download.py", "titanic", env=kaggle_env(kit_home, fake_kaggle))
    assert result.returncode == 4
    last = result.stderr.strip().splitlines()[-1]
    assert "after 3 attempts" in last
    assert len(fake_kaggle.calls("DownloadDataFiles")) == 3
    assert not (kit_home / "data" / "titanic").exists()


def test_unknown_competition_on_kaggle_404(fake_kaggle, kit_home):
    # Ask the client directly for a slug the fake does not hold.
    env = kaggle_env(kit_home, fake_kaggle)
    code = ("import sys; from pathlib import Path; from common.kaggle_api import download_competition\n"
            "from common.errors import KitError\n"
            "try:\n    download_competition('no-such-comp', Path(sys.argv[1]))\n"
            "except KitError as e:\n    print(e); sys.exit(7)\n")
    result = subprocess.run([sys.executable, "-c", code, str(kit_home)], capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode == 7, result.stderr
    assert "404" in result.stdout


def test_kaggle_out_of_reach_is_one_line_that_offers_local_files(kit_home, port_80):
    """No network: key credentials fail on the download (after the bounded retries), a token already when the client
    checks it online - exit 4 either way, never a traceback or a file-system error."""
    # kaggle_env points the client at localhost:80, where nothing listens without the fake_kaggle fixture
    env = {**kaggle_env(kit_home), "KAGGLE_USERNAME": "someone", "KAGGLE_KEY": "0" * 32}
    result = run_script("download.py", "titanic", env=env)
    assert result.returncode == 4, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: Kaggle kept failing while trying to download titanic (cannot reach localhost")
    assert "KAGGLE_DATA_DIR" in last and len(last) < 300 and "Traceback" not in result.stderr
    token = {**kaggle_env(kit_home), "KAGGLE_API_TOKEN": "not-a-token"}
    result = run_script("download.py", "titanic", env=token)
    assert result.returncode == 4, result.stderr  # was 7, "cannot use a file: ConnectionError"
    last = result.stderr.strip().splitlines()[-1]
    assert "while checking the credentials" in last or "rejected the credentials" in last  # offline / online
    assert not (kit_home / "data" / "titanic").exists()


def test_port_80_is_held_by_one_test_at_a_time(fake_kaggle):
    """`make test` runs the tests in parallel workers: while one test has the fake Kaggle up, another process (a
    second worker, or a second test session) cannot take the port's lock, and waits for it (flock: per open file)."""
    from conftest import PORT_80_LOCK, flock_is_held

    assert flock_is_held(PORT_80_LOCK)


def test_an_interrupted_download_resumes_where_it_stopped(fake_kaggle, kit_home, shared_kaggle):
    """An interrupted download keeps what arrived; the next run asks Kaggle only for the rest (HTTP range)."""
    import hashlib
    import os
    import signal
    import time
    import zipfile

    blob = (shared_kaggle / "digit-recognizer" / "digit-recognizer.zip").read_bytes()
    part = kit_home / "data" / ".download-digit-recognizer" / "digit-recognizer.zip"
    fake_kaggle.state.stall_download_after = 6 << 20  # the connection hangs after 6 MB of 15.6
    env = kaggle_env(kit_home, fake_kaggle)
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "download.py"), "digit-recognizer"], env=env,
                            cwd=kit_home, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and not (part.is_file() and part.stat().st_size >= 5 << 20):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGTERM)  # unwinds like Ctrl-C (kill -9 leaves the same files behind)
    assert proc.wait(timeout=60) == 143
    assert "the download so far stays in data/.download-digit-recognizer/" in proc.stderr.read().decode()
    kept = part.stat().st_size
    assert 5 << 20 <= kept < len(blob) and blob.startswith(part.read_bytes())
    said = run_script("prune.py", "digit-recognizer", env=env).stdout
    assert "a download cut short, which the next command that needs the files resumes" in said

    fake_kaggle.state.stall_download_after = None
    fake_kaggle.state.stall_released.set()
    result = run_script("download.py", "digit-recognizer", env=env)
    assert result.returncode == 0, result.stderr
    assert "MB of an earlier download" in result.stderr
    assert fake_kaggle.state.file_requests[-1]["range"] == f"bytes={kept}-"  # only the rest was sent
    with zipfile.ZipFile(shared_kaggle / "digit-recognizer" / "digit-recognizer.zip") as zf:
        expected = {name: hashlib.sha256(zf.read(name)).hexdigest() for name in zf.namelist()}
    manifest = json.loads((kit_home / "data" / "digit-recognizer" / "MANIFEST.json").read_text())
    assert manifest["files"] == expected
    assert not part.parent.exists()  # the download is gone once its files are in the cache


def test_a_second_download_of_the_same_files_waits_and_takes_the_firsts_cache(fake_kaggle, kit_home,
                                                                                shared_kaggle):
    import time

    import competitions
    from common import data
    from common.io import FileLock

    lock = FileLock(kit_home / "data" / ".download-titanic.flock")
    (kit_home / "data").mkdir()
    lock.acquire()  # as a download in another process would
    log = kit_home / "second.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "download.py"), "titanic"], cwd=kit_home,
                                env=kaggle_env(kit_home, fake_kaggle), stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and "waiting for it" not in log.read_text():
            time.sleep(0.05)
        assert "another process is downloading the same files; waiting for it" in log.read_text()
        # meanwhile "the other process" fills the cache (here from the local files)
        data._unpack_to_cache(competitions.get("titanic"), shared_kaggle / "titanic", "kaggle-api")
    finally:
        lock.release()
    assert proc.wait(timeout=60) == 0, log.read_text()
    assert "another process downloaded the files meanwhile" in log.read_text()
    assert not fake_kaggle.calls("DownloadDataFiles")  # nothing was downloaded twice


def test_a_full_disk_during_a_download_is_the_machines_error_and_not_retried():
    import errno

    from common import kaggle_api

    calls = []

    def download():
        calls.append(1)
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError) as raised:  # the CLI makes it one line with exit 7, as for any full disk
        kaggle_api.call_with_retries(download, "titanic", "download titanic", backoff=0)
    assert raised.value.errno == errno.ENOSPC and len(calls) == 1

    def reset():
        calls.append(1)
        raise ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")

    calls.clear()
    with pytest.raises(kaggle_api.KaggleApiError, match="after 3 attempts"):  # the network's: retried, exit 4
        kaggle_api.call_with_retries(reset, "titanic", "download titanic", backoff=0)
    assert len(calls) == 3


def test_the_client_is_authenticated_again_only_after_a_while(monkeypatch):
    """One authentication serves a submit's calls; a long wait for a score authenticates again (an OAuth access
    token does not last forever)."""
    from common import kaggle_api

    now, made, warned = [1000.0], [], []
    monkeypatch.setattr(kaggle_api, "_CLIENTS", {})
    monkeypatch.setattr(kaggle_api.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(kaggle_api, "_authenticated", lambda: made.append(object()) or made[-1])
    monkeypatch.setattr(kaggle_api, "warn_if_token_readable", lambda: warned.append(1))
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    monkeypatch.setenv("KAGGLE_KEY", "0" * 32)
    first = kaggle_api._client()
    now[0] += kaggle_api.CLIENT_SECONDS - 1
    assert kaggle_api._client() is first and len(made) == 1
    now[0] += 2
    assert kaggle_api._client() is not first and len(made) == 2
    monkeypatch.setenv("KAGGLE_USERNAME", "someone-else")  # other credentials: their own client
    assert kaggle_api._client() is made[-1] and len(made) == 3
    assert len(warned) == 2  # once per set of credentials
