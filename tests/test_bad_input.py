"""Issue 10's defects, one test each: bad input and faults end in one clear line with the documented exit code, and
never replace a good cache, run or submission."""

import argparse
import errno
import gzip
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from io import BytesIO
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import competitions
from common import data, io, kaggle_api, runner
from common.cli import handle_errors
from common.competition import Data
from common.errors import DataError, UsageError
from common.metrics import ACCURACY
from common.runs import RunRecord, best_run, load_runs, rank_by_cv, update_record
from common.splitters import RowFolds

from conftest import ROOT, run_script
from test_data import zip_folder

TITANIC = competitions.get("titanic")
HP = competitions.get("house-prices")


def env_with(**extra: str) -> dict[str, str]:
    return {**os.environ, **extra}


def one_error_line(result: subprocess.CompletedProcess, code: int) -> str:
    """The run failed with ``code`` and said why in one line, with no traceback."""
    assert result.returncode == code, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-2000:]
    return errors[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (to prove nothing changed)."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def titanic_copy(shared_kaggle: Path, root: Path) -> Path:
    target = root / "titanic"
    shutil.copytree(shared_kaggle / "titanic", target)
    return target


# 1. A zip with bad data never replaces the good cache.
def test_bad_zip_leaves_the_good_cache_in_place(shared_kaggle, tmp_path, kit_home):
    good = tmp_path / "good"
    good.mkdir()
    zip_folder(shared_kaggle / "titanic", good / "titanic.zip")
    files, _ = data.load(TITANIC, good)
    cache_before = snapshot(files.folder)

    bad_src = titanic_copy(shared_kaggle, tmp_path / "badsrc")
    train = pd.read_csv(bad_src / "train.csv").drop(columns=["Survived"])
    train.to_csv(bad_src / "train.csv", index=False)
    bad = tmp_path / "bad"
    bad.mkdir()
    zip_folder(bad_src, bad / "titanic.zip")
    result = run_script("train.py", "titanic", "--recipe", "fast", "--quiet",
                        env=env_with(KIT_HOME=str(kit_home), KAGGLE_DATA_DIR=str(bad)))
    line = one_error_line(result, 3)
    assert "Survived" in line and "cache was left as it was" in line
    assert snapshot(files.folder) == cache_before
    assert not [p for p in (kit_home / "data").iterdir() if p.name.startswith(".tmp")]  # no temp folder left
    # The next run without a data dir trains from the untouched cache.
    again = run_script("train.py", "titanic", "--recipe", "fast", "--quiet", "--folds", "3",
                       env={k: v for k, v in env_with(KIT_HOME=str(kit_home)).items() if k != "KAGGLE_DATA_DIR"})
    assert again.returncode == 0, again.stderr


def test_a_zip_that_no_longer_fits_the_folds_leaves_the_cache(shared_kaggle, tmp_path, kit_home):
    good = tmp_path / "good"
    good.mkdir()
    zip_folder(shared_kaggle / "titanic", good / "titanic.zip")
    runner.train(TITANIC, "fast", n_folds=3, data_dir=good, progress=False)
    cache_before = snapshot(kit_home / "data" / "titanic")
    changed = titanic_copy(shared_kaggle, tmp_path / "src")
    train = pd.read_csv(changed / "train.csv")
    train.loc[0, "PassengerId"] = 5000  # every file check passes; only the persisted folds can tell
    train.to_csv(changed / "train.csv", index=False)
    other = tmp_path / "other"
    other.mkdir()
    zip_folder(changed, other / "titanic.zip")
    with pytest.raises(DataError, match=r"train data changed since .*\(1 ids gone, 1 new\).*cache was left as it was"):
        runner.train(TITANIC, "fast", n_folds=3, data_dir=other, progress=False)
    assert snapshot(kit_home / "data" / "titanic") == cache_before


def test_a_cache_that_fails_the_checks_is_named(shared_kaggle, tmp_path, kit_home):
    good = tmp_path / "good"
    good.mkdir()
    zip_folder(shared_kaggle / "titanic", good / "titanic.zip")
    files, _ = data.load(TITANIC, good)
    # A cache whose files and manifest were both edited (by hand, or checks made stricter by an update).
    train = files.folder / "train.csv"
    train.write_bytes(train.read_bytes().replace(b"\r\n1,0,3,", b"\r\n1,7,3,", 1))
    manifest = json.loads((files.folder / data.MANIFEST).read_text())
    manifest["files"]["train.csv"] = data.sha256_file(train)
    (files.folder / data.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(DataError, match=r"Survived must be 0 or 1; row 1 \(PassengerId 1\).*in the cached copy"):
        data.load(TITANIC)


# 2. --params merges over the recipe's own params; unknown names and bad values are usage errors.
def test_params_merge_over_the_recipes_own(data_dir):
    record, _ = runner.train(TITANIC, "lgbm", n_folds=3, params={"num_leaves": 4}, progress=False)
    assert record["params"] == {**TITANIC.recipes["lgbm"].params, "num_leaves": 4}
    blend, _ = runner.train(TITANIC, "blend", n_folds=3, params={"lgbm": {"n_estimators": 50}}, progress=False)
    assert blend["params"]["lgbm"] == {**TITANIC.recipes["lgbm"].params, "n_estimators": 50}
    assert blend["params"]["logreg"] == TITANIC.recipes["logreg"].params
    stack, _ = runner.train(HP, "fast", n_folds=3, params={"members": {"ridge": {"alpha": 3.0}}}, progress=False)
    assert stack["params"]["members"] == {"ridge": {**HP.recipes["ridge"].params, "alpha": 3.0},
                                          "lasso": HP.recipes["lasso"].params}


@pytest.mark.parametrize(
    ("recipe", "params", "message"),
    [
        ("lgbm", {"bogus": 1}, r"unknown param 'bogus' for recipe 'lgbm' of titanic; its params are: n_estimators"),
        ("fast", {"bogus": 1}, r"unknown param 'bogus' for recipe 'fast' of titanic; its params are: C=0.3"),
        ("fast", {"C": 0.3, "bogus": 1}, r"unknown param 'bogus'"),
        ("fast", {"C": "strong"}, r"param 'C' of recipe 'fast' of titanic must be a number, got 'strong'"),
        ("fast", {"C": -1}, r"recipe 'fast' of titanic cannot use these params: The 'C' parameter"),
        ("lgbm", {"num_leaves": 1}, r"titanic/lgbm failed with the params you gave \(num_leaves\)"),
        ("rule", {"C": 1}, r"unknown param 'C' for recipe 'rule' of titanic; its params are: none"),
        ("blend", {"members": {}}, r"unknown param 'members'.*sections: logreg, lgbm"),
    ],
)
def test_bad_params_are_refused_before_anything_is_written(data_dir, kit_home, recipe, params, message):
    with pytest.raises(UsageError, match=message):
        runner.train(TITANIC, recipe, n_folds=3, params=params, progress=False)
    assert not (kit_home / "submissions").exists()
    assert not list((kit_home / "runs").rglob("run.json")) if (kit_home / "runs").exists() else True


def test_bad_params_file_is_one_usage_line(data_dir, tmp_path, kit_home):
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"C": -1}))
    result = run_script("train.py", "titanic", "--recipe", "fast", "--params", str(params),
                        env=env_with(KIT_HOME=str(kit_home)))
    assert "C" in one_error_line(result, 2)
    assert not (kit_home / "submissions").exists()


# 3. Damaged train data: truncation and duplicate ids refused at load; a folds mismatch says the data changed.
def test_a_file_cut_mid_row_is_called_truncated(shared_kaggle, tmp_path):
    folder = titanic_copy(shared_kaggle, tmp_path)
    raw = (folder / "train.csv").read_bytes()
    cut = raw.index(b",", len(raw) // 2)  # right after a complete field, half-way through the file
    (folder / "train.csv").write_bytes(raw[:cut])
    line = raw[:cut].count(b"\n") + 1
    with pytest.raises(DataError, match=rf"train\.csv ends mid-row at line {line} .*looks truncated"):
        data.load(TITANIC, tmp_path)


def test_a_quoted_field_cut_short_is_called_truncated(shared_kaggle, tmp_path):
    folder = titanic_copy(shared_kaggle, tmp_path)
    raw = (folder / "train.csv").read_bytes()
    cut = raw.index(b'"', len(raw) // 2) + 3  # inside a quoted name
    (folder / "train.csv").write_bytes(raw[:cut] + b"\r\n")
    with pytest.raises(DataError, match=r"train\.csv ends inside a quoted field .*looks truncated"):
        data.load(TITANIC, tmp_path)


@pytest.mark.parametrize("name", ["train.csv", "test.csv"])
def test_duplicate_ids_are_refused_at_load_naming_file_and_ids(shared_kaggle, tmp_path, name):
    folder = titanic_copy(shared_kaggle, tmp_path)
    table = pd.read_csv(folder / name)
    table.loc[5, "PassengerId"] = table.loc[2, "PassengerId"]
    table.to_csv(folder / name, index=False)
    dup = table.loc[2, "PassengerId"]
    with pytest.raises(DataError, match=rf"{name}: PassengerId must be unique, but 1 value\(s\) appear more than "
                                        rf"once: {dup} \(row 3, row 6\)"):
        data.load(TITANIC, tmp_path)


def test_folds_mismatch_says_the_data_changed(shared_kaggle, tmp_path, monkeypatch):
    folder = titanic_copy(shared_kaggle, tmp_path)
    monkeypatch.setenv("KAGGLE_DATA_DIR", str(tmp_path))
    prep = runner.prepare(TITANIC, 5)
    lines = (folder / "train.csv").read_bytes().split(b"\r\n")
    (folder / "train.csv").write_bytes(b"\r\n".join(lines[:444]) + b"\r\n")  # 443 complete rows
    with pytest.raises(DataError, match=r"the train data changed since .*stratified-k5-seed42\.csv was made: the folds "
                                        r"cover 891 rows, train now has 443 \(448 ids gone, 0 new\)"):
        runner.prepare(TITANIC, 5)
    # The same rows in another order keep their folds (matched by id).
    (folder / "train.csv").write_bytes(b"\r\n".join([lines[0], *reversed(lines[1:892])]) + b"\r\n")
    shuffled = runner.prepare(TITANIC, 5)
    by_id = dict(zip(prep.data.train["PassengerId"], prep.folds.fold, strict=True))
    assert [by_id[i] for i in shuffled.data.train["PassengerId"]] == list(shuffled.folds.fold)


@pytest.mark.parametrize(("text", "problem"), [
    ("PassengerId,fold\n1,9\n", "its fold ids are not 0..4"),
    ("PassengerId,fold\n1,0\n1,1\n", "PassengerId values repeat"),
    ("id,fold\n1,0\n", "its columns are ['id', 'fold'], not ['PassengerId', 'fold']"),
    (b"\xff\xfe\x00garbage", "'utf-8' codec can't decode"),
], ids=["fold-ids", "ids-repeat", "columns", "not-text"])
def test_a_damaged_folds_file_is_named_as_damaged(data_dir, kit_home, text, problem):
    prep = runner.prepare(TITANIC, 5)
    if isinstance(text, bytes):
        prep.folds.path.write_bytes(text)
    else:
        prep.folds.path.write_text(text)
    with pytest.raises(DataError, match=rf"folds file .* is damaged \({re.escape(problem)}"):
        runner.prepare(TITANIC, 5)


# 4. OS errors are one line naming the path and what to do.
def _without_root_powers() -> list[str]:
    """A command prefix under which file permissions apply: nothing when we are not root; as root, util-linux's
    setpriv drops the capabilities that let root ignore them (DAC override), so a read-only folder is read-only."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without util-linux setpriv; the in-process test covers this path")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--"]


@pytest.mark.parametrize("script", [("train.py", "titanic", "--recipe", "fast"), ("download.py", "titanic"),
                                    ("tune.py", "titanic", "--recipe", "logreg", "--trials", "1")])
def test_read_only_home_is_one_line(shared_kaggle, script):
    prefix = _without_root_powers()
    home = Path(os.environ.get("TMPDIR", "/tmp")) / f"kit-ro-{os.getpid()}"
    home.mkdir(mode=0o755, exist_ok=True)
    try:
        home.chmod(0o555)
        # Titanic is read in place from the shared mirror: the failure is the first write under KIT_HOME.
        env = {**os.environ, "KIT_HOME": str(home), "KAGGLE_DATA_DIR": str(shared_kaggle), "HOME": str(home),
               "PYTHONDONTWRITEBYTECODE": "1", "MPLCONFIGDIR": str(home)}
        result = subprocess.run([*prefix, sys.executable, str(ROOT / "scripts" / script[0]), *script[1:]], env=env,
                                capture_output=True, text=True, cwd=ROOT, timeout=300)
        if script[0] == "download.py":  # reads the mirror in place: nothing to write, so it works
            assert result.returncode == 0, result.stderr
            return
        line = one_error_line(result, 7)
        assert str(home) in line and "Permission denied" in line and "KIT_HOME" in line
    finally:
        home.chmod(0o755)
        shutil.rmtree(home, ignore_errors=True)


def test_read_only_cache_folder_on_download_is_one_line(shared_kaggle, tmp_path):
    prefix = _without_root_powers()
    home = Path(os.environ.get("TMPDIR", "/tmp")) / f"kit-ro-dl-{os.getpid()}"
    mirror = home / "mirror"
    mirror.mkdir(parents=True, exist_ok=True)
    zip_folder(shared_kaggle / "titanic", mirror / "titanic.zip")
    try:
        for folder in (home, mirror):
            folder.chmod(0o555)
        (mirror / "titanic.zip").chmod(0o444)
        env = {**os.environ, "KIT_HOME": str(home), "KAGGLE_DATA_DIR": str(mirror), "HOME": str(home),
               "PYTHONDONTWRITEBYTECODE": "1"}
        result = subprocess.run([*prefix, sys.executable, str(ROOT / "scripts" / "download.py"), "titanic"],
                                env=env, capture_output=True, text=True, cwd=ROOT, timeout=300)
        line = one_error_line(result, 7)
        assert f"cannot use {home}/data" in line and "Permission denied" in line
    finally:
        for folder in (home, mirror):
            folder.chmod(0o755)
        shutil.rmtree(home, ignore_errors=True)


def test_permission_denied_in_process_is_one_line(data_dir, kit_home, monkeypatch, capsys):
    """The same path as a read-only KIT_HOME, in process (and on machines without setpriv)."""
    real_mkdir = Path.mkdir

    def denied(self, *args, **kwargs):
        if str(self).startswith(str(kit_home)):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", denied)
    assert handle_errors(lambda: runner.train(TITANIC, "fast", n_folds=3, progress=False)) == 7
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith(f"error: cannot use {kit_home}") and "Permission denied" in line and "KIT_HOME" in line


# With --params a fit's own errors read as the params' fault (exit 2); the machine's refusals must stay exit 7.
@pytest.mark.parametrize("params", [None, {"C": 0.5}], ids=["recipe", "with-params"])
def test_out_of_memory_is_one_line_and_keeps_the_finished_folds(data_dir, kit_home, monkeypatch, capsys, params):
    """numpy refuses a large allocation with MemoryError (a laptop running Web Traffic at full size): one line, exit
    7, the folds finished before it kept for the same command to go on from."""
    from common import cv

    real, calls = cv._fit_fold, []

    def hungry(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise MemoryError("Unable to allocate 7.45 GiB for an array with shape (1000000000,) and data type int64")
        return real(*args, **kwargs)

    monkeypatch.setattr(cv, "_fit_fold", hungry)
    assert handle_errors(lambda: runner.train(TITANIC, "fast", n_folds=3, progress=False, params=params)) == 7
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("error: out of memory") and "2 finished fold(s) kept" in line
    assert not (kit_home / "runs" / "titanic").exists() or not list((kit_home / "runs" / "titanic").iterdir())


@pytest.mark.parametrize("params", [None, {"C": 0.5}], ids=["recipe", "with-params"])
def test_a_full_disk_during_the_folds_is_the_machines_error(data_dir, kit_home, monkeypatch, capsys, params):
    from common import cv

    real, calls = cv._fit_fold, []

    def full(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(kit_home / "resume"))
        return real(*args, **kwargs)

    monkeypatch.setattr(cv, "_fit_fold", full)
    assert handle_errors(lambda: runner.train(TITANIC, "fast", n_folds=3, progress=False, params=params)) == 7
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("error: cannot use") and "disk is full" in line and "params" not in line


def test_a_librarys_own_oserror_under_params_names_the_params(data_dir, kit_home, monkeypatch, capsys):
    """transformers raises a bare OSError (no errno) for a model it cannot load: that is the params' doing."""
    from common import cv

    def unloadable(*args, **kwargs):
        raise OSError("Can't load tokenizer for 'my-model'")

    monkeypatch.setattr(cv, "_fit_fold", unloadable)
    assert handle_errors(lambda: runner.train(TITANIC, "fast", n_folds=3, progress=False, params={"C": 0.5})) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "failed with the params you gave (C): OSError: Can't load tokenizer for 'my-model'" in line


def test_a_refused_temp_file_is_named_by_the_file_it_was_for(tmp_path, monkeypatch):
    """A read-only disk refuses the temp file an atomic write starts with: the line names leaderboard.md, not
    `.leaderboard.md.tmp-1234-ab12cd34-x7`, a name the user never chose; other files keep their own names."""
    target = tmp_path / "leaderboard.md"

    def read_only(dir, prefix):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.path.join(dir, f"{prefix}x7"))

    monkeypatch.setattr(io.tempfile, "mkstemp", read_only)
    with pytest.raises(OSError) as refused:
        io.write_text_atomic(target, "x")
    assert refused.value.filename == str(target) and refused.value.errno == errno.EROFS
    with pytest.raises(OSError) as other, io.naming(target):
        raise OSError(errno.EACCES, os.strerror(errno.EACCES), str(tmp_path / "runs"))
    assert other.value.filename == str(tmp_path / "runs")


def test_a_file_in_a_run_being_written_is_named_by_the_run_it_will_be(tmp_path):
    """A full disk while a run is written named `runs/titanic/.tmp-3841-5bce98f7-20261208-004449-fast-f8aba5/
    oof.parquet` (measured on a 60 kB tmpfs): now the run folder it was to become."""
    from common.errors import describe_os_error

    run_id = "20261208-004449-fast-f8aba5"
    building = tmp_path / "runs" / "titanic" / f".{io.temp_tag()}{run_id}"
    line = describe_os_error(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(building / "oof.parquet")))
    assert str(tmp_path / "runs" / "titanic" / run_id / "oof.parquet") in line and ".tmp-" not in line, line
    renamed = describe_os_error(OSError(errno.EXDEV, os.strerror(errno.EXDEV), str(building), None,
                                        str(building.parent / run_id)))
    assert f"{building.parent / run_id}:" in renamed and " -> " not in renamed, renamed  # one name, not twice
    other = tmp_path / "titanic.tmp-notes" / "a.csv"  # a name of the user's own is left as it is
    assert str(other) in describe_os_error(OSError(errno.EACCES, os.strerror(errno.EACCES), str(other)))


def test_disk_full_is_one_line_and_leaves_no_temp_file(data_dir, kit_home, monkeypatch, capsys):
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(io.os, "fsync", full)
    code = handle_errors(lambda: runner.train(TITANIC, "fast", n_folds=3, progress=False))
    assert code == 7
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"error: cannot use {kit_home}") and "disk is full" in err[-1]
    leftovers = [p for p in kit_home.rglob(".*") if "tmp-" in p.name]
    assert not leftovers
    assert not (kit_home / "submissions").exists()


def test_a_file_where_a_folder_belongs_is_one_line_and_the_run_is_kept(data_dir, kit_home, capsys):
    (kit_home / "submissions").write_text("not a folder")
    code = handle_errors(lambda: runner.train(TITANIC, "fast", n_folds=3, progress=False))
    assert code == 7
    line = capsys.readouterr().err.strip().splitlines()[-1]
    [run] = (kit_home / "runs" / "titanic").iterdir()  # the finished run is not lost, and the line says so:
    assert line.startswith(f"error: the run is written, with its submission: {run / 'submission.csv'} (submit.py "
                           "sends it from there; nothing needs training again), but the copy to "
                           f"{kit_home / 'submissions'}")  # rather than "run the same command again", which trains
    assert line.endswith("a file stands where a folder is needed; move it away and copy it"), line
    assert (kit_home / "submissions").read_text() == "not a folder"
    assert not list(kit_home.glob("resume/titanic/*/fold-*.pkl"))  # the run is whole: its folds are not kept


# 5. Options are checked before any work, as usage errors with the valid range.
@pytest.mark.parametrize(("script", "args", "text"), [
    ("train.py", ("--seed", "-1"), "seeds are 0..4294967295"),
    ("train.py", ("--seed", "x"), "not a whole number"),
    ("train.py", ("--folds", "1"), "use 2..20 folds"),
    ("train.py", ("--folds", "100000"), "use 2..20 folds"),
    ("train.py", ("--folds", "500"), "use 2..20 folds"),
    ("compare.py", ("--repeats", "0"), "0 is out of range; use 1..50 repeats"),
    ("submit.py", ("--poll", "0"), "0 is out of range; use a finite number of seconds, at least 0.1"),
    ("submit.py", ("--timeout", "-5"), "-5 is out of range"),
    ("tune.py", ("--timeout", "nan"), "nan is out of range"),
    ("train.py", ("--recipie", "lgbm"), "error: unrecognized arguments: --recipie lgbm (did you mean '--recipe'?) "
                                        "(train.py --help shows every option)"),
    ("submit.py", ("--dryrun",), "(did you mean '--dry-run'?)"),
])
def test_options_are_checked_before_any_work(kit_home, script, args, text):
    started = time.perf_counter()
    result = run_script(script, "titanic", *args, env=env_with(KIT_HOME=str(kit_home)))
    assert result.returncode == 2 and text in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr  # one line, as every other error: no usage
    assert not any(kit_home.iterdir())
    assert time.perf_counter() - started < 60


@pytest.mark.parametrize(("name", "value"), [("KIT_THREADS", "two"), ("KIT_THREADS", "0"),
                                             ("KIT_HEARTBEAT_SECONDS", "1.5")])
def test_a_typo_in_a_numeric_setting_is_one_usage_line_before_any_work(kit_home, name, value):
    """Read first by a model, a bad KIT_THREADS was blamed on the recipe's params."""
    result = run_script("train.py", "titanic", env=env_with(KIT_HOME=str(kit_home), **{name: value}))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (f"error: {name} must be a whole number of at least 1, not "
                                                      f"{value!r}; fix or unset it")
    assert not any(kit_home.iterdir())

@pytest.mark.parametrize("name", ["KIT_HOME", "KAGGLE_DATA_DIR", "KIT_MODEL_CACHE"])
def test_a_folder_setting_pasted_with_a_space_is_one_usage_line_before_any_work(tmp_path, monkeypatch, name):
    """KIT_HOME=" /data/kaggle" (an env file, an IDE's run settings) is a relative folder: runs would land in
    ./ /data/kaggle."""
    from common.compute import check_settings

    monkeypatch.setenv(name, f" {tmp_path}")
    with pytest.raises(UsageError, match=rf"^{name} is ' {tmp_path}': a space begins or ends it, which would make it "
                                         rf"another folder; did you mean '{tmp_path}'\?$"):
        check_settings()
    monkeypatch.setenv(name, str(tmp_path))
    check_settings()
    spaced = tmp_path / "a folder "  # one that exists as it is given is taken as it is
    spaced.mkdir()
    monkeypatch.setenv(name, str(spaced))
    check_settings()


def test_fold_count_beyond_the_smallest_class_is_a_usage_error():
    y = np.array([0] * 100 + [1] * 3)
    dataset = Data(pd.DataFrame({"id": range(103), "t": y}), pd.DataFrame(), pd.DataFrame(), "t", "id")
    with pytest.raises(UsageError, match=r"cannot make 5 stratified folds of 103 train rows: there are only 3 rows "
                                         r"of the smallest class; choose --folds between 2 and 3"):
        RowFolds("stratified").assign(dataset, 5)


def test_a_competition_named_after_a_list_option_is_moved_to_the_front():
    """--recipes lgbm titanic: nargs took titanic for a recipe, and argparse asked for the competition given."""
    from common.cli import competition_first

    parser = argparse.ArgumentParser()
    parser.add_argument("competition")
    parser.add_argument("--recipes", nargs="*")
    parser.add_argument("--folds")
    names = ["titanic", "house-prices"]
    assert competition_first(parser, ["--recipes", "lgbm", "titanic"], names) == ["titanic", "--recipes", "lgbm"]
    assert competition_first(parser, ["--recipes", "lgbm", "titanic", "--folds", "3"], names) == [
        "titanic", "--recipes", "lgbm", "--folds", "3"]
    assert parser.parse_args(competition_first(parser, ["--recipes", "a", "b", "titanic"], names)).recipes == ["a", "b"]
    for left in (["titanic", "--recipes", "lgbm"], ["--folds", "3", "titanic"],  # argparse finds these itself
                 ["--recipes", "titanic", "house-prices"]):  # two: which one is meant is not for us to guess
        assert competition_first(parser, left, names) == left

def test_durations_read_as_people_say_them():
    from common.cli import duration_text

    assert [duration_text(s) for s in (0.4, 45, 59.6, 332, 3599, 3600, 5000)] == [
        "0 s", "45 s", "1 min 0 s", "5 min 32 s", "59 min 59 s", "1 h 00 min", "1 h 23 min"]

def test_best_run_compares_only_runs_on_the_same_folds():
    def run(mean, folds, started):
        return RunRecord(started, started, "titanic", "x", {}, {"mean": mean}, folds={"hash": folds})

    runs = [run(0.84, "a", "1"), run(0.85, "a", "2"), run(0.95, "b", "3")]  # "b": a lucky 20-fold CV
    assert best_run(runs, ACCURACY).run_id == "2"


def test_best_run_compares_runs_that_scored_some_folds_on_the_folds_all_scored():
    from common.metrics import SMAPE

    def run(scores, kind, started):
        cv = {"mean": float(np.mean(scores)), "fold_scores": scores}
        return RunRecord(started, started, "x", "x", {}, cv, folds={"hash": "a", "kind": kind})

    # the digit CNN scores fold 0 alone; on that fold the 5-fold run is the better
    every, first = run([0.90, 0.80, 0.82, 0.84, 0.84], "stratified", "1"), run([0.88], "stratified", "2")
    assert best_run([every, first], ACCURACY) is every
    # a quick look at the newest backtest window (--folds-scored 1) against the full backtest, on that window
    full, newest = run([50.0, 50.0, 48.0], "backtest", "1"), run([48.5], "backtest", "2")
    assert best_run([full, newest], SMAPE) is full
    assert best_run([full, run([50.0, 50.0, 47.9], "backtest", "3")], SMAPE).started == "3"  # all scored: the mean



def test_a_quick_look_at_one_fold_leaves_full_cvs_ranked_on_all_their_folds():
    """One --folds-scored 1 run made every full CV count fold 0 alone: lgbm (luckier on fold 0) took default's
    place as the run submit.py sends. The quick run is judged against fold 0's difficulty instead."""
    def run(scores, started, kind="stratified"):
        cv = {"mean": float(np.mean(scores)), "fold_scores": scores}
        return RunRecord(started, started, "x", "x", {}, cv, folds={"hash": "a", "kind": kind})

    default, lgbm = run([0.86, 0.85, 0.85, 0.84, 0.85], "1"), run([0.87, 0.845, 0.845, 0.835, 0.845], "2")
    easy_fold = run([0.865], "3")  # fold 0 is 0.016 easier than the average: 0.849 on the full CVs' scale
    assert rank_by_cv([default, lgbm, easy_fold], ACCURACY) == [default, easy_fold, lgbm]
    assert best_run([lgbm, default, easy_fold], ACCURACY) is default
    assert best_run([lgbm, default, run([0.875], "4")], ACCURACY).started == "4"  # 0.859 on that scale
    # backtests: the newest window is the hardest here; a look at it alone is judged against that
    from common.metrics import SMAPE

    full, quick = run([50.0, 50.0, 53.0], "5", "backtest"), run([52.0], "6", "backtest")
    assert best_run([full, quick], SMAPE) is quick


def test_a_new_run_is_told_where_it_stands_among_the_runs_on_its_folds():
    from common.runs import standing

    def run(mean, started, folds="a"):
        cv = {"mean": mean, "std": 0.0, "fold_scores": [mean] * 5}
        return RunRecord(started, started, "titanic", f"r{started}", {}, cv, folds={"hash": folds})

    old, other_folds = run(0.84, "1"), run(0.99, "2", folds="b")  # a lucky CV on other folds is not a rival
    assert standing(old, [old, other_folds], ACCURACY) is None
    new = run(0.85, "3")
    assert standing(new, [old, other_folds, new], ACCURACY) == (
        "#1 of 2 runs on these folds by CV, 0.01000 above the best before, r1 run 1 (0.84000 ± 0.00000)")
    again = run(0.85, "4")  # the same CV again: no gain, the earlier run stays the best
    assert standing(again, [old, new, again], ACCURACY) == (
        "#2 of 3 runs on these folds by CV; the best is r3 run 3 (0.85000 ± 0.00000), the same CV made before")
    # the best of one command's runs (seeds 0 and 1 tie): ranked above its siblings, against the runs before
    seed0, seed1 = run(0.86, "5"), run(0.86, "6")
    assert standing(seed0, [old, seed0, seed1], ACCURACY, siblings=[seed1]) == (
        "#1 of 3 runs on these folds by CV, 0.02000 above the best before, r1 run 1 (0.84000 ± 0.00000)")
    assert standing(seed0, [other_folds], ACCURACY, siblings=[seed1]) is None  # nothing before it on its folds

# 6. Signals and leftovers.
def _start_and_wait_for(args: list[str], env: dict[str, str], marker: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / args[0]), *args[1:]], env=env, cwd=ROOT,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    deadline = time.time() + 120
    assert proc.stderr is not None
    for line in proc.stderr:
        if marker in line or time.time() > deadline:
            break
    return proc


def test_a_run_started_beside_another_training_says_they_share_the_cores(data_dir, kit_home, monkeypatch, caplog):
    """Two trainings on 2 cores each run several times slower: a slow run should not be taken for a slow model."""
    from common import io

    monkeypatch.delenv("KIT_THREADS", raising=False)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        marks = kit_home / runner.TRAINING
        marks.mkdir()
        (marks / f".tmp-{2**22 + 5}-{io.host_tag()}-owner").touch()  # a killed process's: no one
        runner.train(TITANIC, "fast", n_folds=3, progress=False)
        assert "share its" not in caplog.text and not marks.exists()  # swept, and this run's own mark gone
        marks.mkdir()
        (marks / f".tmp-{other.pid}-{io.host_tag()}-owner").touch()  # a tune.py, compare.py or train.py
        runner.train(TITANIC, "fast", n_folds=3, progress=False)
        assert f"1 other training process(es) on this machine (pid {other.pid}) share its" in caplog.text
        assert [m.name for m in marks.iterdir()] == [f".tmp-{other.pid}-{io.host_tag()}-owner"]
        caplog.clear()
        monkeypatch.setenv("KIT_THREADS", "1")  # shared out already
        runner.train(TITANIC, "fast", n_folds=3, progress=False)
        assert "share its" not in caplog.text
    finally:
        other.kill()
        other.wait()

@pytest.mark.parametrize("signum, said", [(signal.SIGTERM, "terminated"),
                                          (signal.SIGHUP, "hung up (the terminal went away)")])
def test_sigterm_and_sighup_behave_like_ctrl_c(data_dir, kit_home, signum, said):
    """SIGHUP is what a run gets when its SSH session drops: it unwound nothing (the temp run folder stayed)."""
    runner.train(TITANIC, "fast", n_folds=3, progress=False)
    before = snapshot(kit_home / "runs") | snapshot(kit_home / "submissions")
    env = env_with(KIT_HOME=str(kit_home))
    proc = _start_and_wait_for(["train.py", "titanic", "--recipe", "blend"], env, "cross-validating")
    proc.send_signal(signum)
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 128 + signum
    assert f"{said}: nothing half-written was kept" in rest and "Traceback" not in rest
    assert snapshot(kit_home / "runs") | snapshot(kit_home / "submissions") == before
    assert not [p for p in (kit_home / "runs" / "titanic").iterdir() if p.name.startswith(".")]
    assert not [p for p in kit_home.rglob(".tmp-*")]  # no temp file, no mark of the process that ended
    assert all(list(kept.glob("fold-*.pkl")) for kept in (kit_home / "resume").glob("*/*"))


def test_a_run_whose_terminal_went_away_unwinds_and_exits_129(data_dir, kit_home):
    """A dropped SSH session: the terminal is gone (every write to it fails with EIO) and SIGHUP arrives. The run
    must unwind as on Ctrl-C; the last line, which cannot be written, must not turn the exit into a traceback."""
    master, terminal = os.openpty()
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "train.py"), "titanic", "--recipe", "blend"],
                            env=env_with(KIT_HOME=str(kit_home)), cwd=ROOT, stdin=terminal, stdout=terminal,
                            stderr=terminal, start_new_session=True)
    os.close(terminal)
    shown, deadline = b"", time.time() + 120
    while b"cross-validating" not in shown and time.time() < deadline:
        shown += os.read(master, 4096)
    os.close(master)  # what the SSH server does when the connection drops; the kernel then sends SIGHUP
    proc.send_signal(signal.SIGHUP)  # (to the terminal's session leader, which this run is not here)
    assert proc.wait(timeout=60) == 128 + signal.SIGHUP
    assert not list((kit_home / "runs" / "titanic").iterdir()) and not (kit_home / runner.TRAINING).exists()


def test_a_python_without_the_toolkit_is_one_line_naming_the_one_to_use(tmp_path):
    """The README writes `python scripts/train.py ...`: with the system's Python (the .venv not activated) it was a
    traceback about pandas. -S leaves out site-packages, as a Python the toolkit was never installed into."""
    for cwd, script in ((ROOT, "scripts/train.py"), (tmp_path, str(ROOT / "scripts" / "train.py"))):
        result = subprocess.run([sys.executable, "-S", script, "titanic", "--recipe", "lgbm"], cwd=cwd,
                                capture_output=True, text=True, timeout=60)
        line = one_error_line(result, 2)
        assert ("does not have the toolkit's packages installed (numpy, pandas, pyarrow, sklearn, lightgbm, optuna "
                "missing)") in line
        venv_python = ".venv/bin/python" if cwd == ROOT else str(ROOT / ".venv" / "bin" / "python")
        assert f"{venv_python} {script} titanic --recipe lgbm" in line  # the command to run instead


def test_an_ignored_hang_up_stays_ignored():
    """Under nohup SIGHUP is ignored, so that a run goes on after its terminal closed: it must not end it."""

    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        assert handle_errors(lambda: os.kill(os.getpid(), signal.SIGHUP) or time.sleep(0.1) or 0) == 0
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_a_several_run_command_cut_short_goes_on_from_the_run_it_had_not_finished(data_dir, kit_home):
    """train.py --recipe a,b,c stopped during b: the same command again trained a from scratch (a run each time)."""
    env = env_with(KIT_HOME=str(kit_home))
    command = ["train.py", "titanic", "--recipe", "fast,rule,logreg", "--folds", "3", "--quiet"]
    proc = _start_and_wait_for(command, env, "cross-validating titanic/rule")
    proc.send_signal(signal.SIGTERM)
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 143 and "Traceback" not in rest
    assert "; 1 of the command's 3 runs is written: the same command does not train it again" in rest
    [fast] = load_runs("titanic")
    update_record(fast.path, lambda r: {"data": {**r.data, "sha256": {**r.data["sha256"], "train.csv": "0" * 64}}})
    again = run_script(*command, env=env)  # as if train.csv had changed in between
    assert again.returncode == 0, again.stderr
    assert f"fast seed 0: run {fast.run_id}, written before this command was cut short; not trained again" in (
        again.stderr)
    runs = load_runs("titanic")
    assert sorted(r.recipe for r in runs) == ["fast", "logreg", "rule"]
    assert all(r.run_id in again.stdout.split("blend them:")[1] for r in runs)
    assert again.stdout.splitlines()[-1].startswith("note: these runs were trained on 2 different versions of the "
                                                    "data files")
    assert not (kit_home / "resume").exists()  # the command finished: its list of written runs is gone
    assert run_script(*command, env=env).returncode == 0 and len(load_runs("titanic")) == 6  # a new command



def test_an_error_after_some_runs_of_a_several_run_command_says_they_are_kept(kit_home, capsys):
    """A recipe whose optional part is missing fails the command after the runs before it: they stay, and say so."""
    from common.resume import Batch

    batch = Batch("titanic", [("fast", 0), ("lgbm", 0)])

    def main():
        batch.add("fast seed 0", "20261206-000000-fast-abcdef")
        raise UsageError("lightgbm is not installed")

    try:
        assert handle_errors(main) == 2
        assert capsys.readouterr().err.strip() == ("error: lightgbm is not installed; 1 of the command's 2 runs is "
                                                   "written: the same command does not train it again")
    finally:
        batch.finish()  # the process goes on (other tests): its errors are not this command's

def test_leftovers_of_a_killed_run_are_removed_by_the_next(data_dir, kit_home):
    env = env_with(KIT_HOME=str(kit_home))
    proc = _start_and_wait_for(["train.py", "titanic", "--recipe", "blend"], env, "cross-validating")
    proc.kill()
    proc.wait()
    runs = kit_home / "runs" / "titanic"
    assert [p for p in runs.iterdir() if p.name.startswith(".tmp-")]  # kill -9 cannot clean up
    runner.train(TITANIC, "fast", n_folds=3, progress=False)
    assert not [p for p in runs.iterdir() if p.name.startswith(".")]
    assert len([p for p in runs.iterdir() if (p / "run.json").is_file()]) == 1


def test_a_run_killed_mid_cv_resumes_its_finished_folds(data_dir, kit_home, tmp_path):
    """kill -9 after the first backtest window: the same command fits only the rest and gives the CV of a run
    never interrupted; the kept folds go once the run is written."""
    env = env_with(KIT_HOME=str(kit_home))
    args = [sys.executable, str(ROOT / "scripts" / "train.py"), "web-traffic", "--recipe", "fast", "--quiet"]
    proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not list((kit_home / "resume").glob("web-traffic/*/fold-0.pkl")):
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    assert list((kit_home / "resume").glob("web-traffic/*/fold-0.pkl")), "no fold was kept before the kill"
    assert not list((kit_home / "runs" / "web-traffic").glob("*/run.json"))
    resumed = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "fold 0 taken from the finished folds kept in" in resumed.stderr
    assert not (kit_home / "resume").exists()
    fresh = subprocess.run(args, env=env_with(KIT_HOME=str(tmp_path / "fresh")), cwd=ROOT, capture_output=True,
                           text=True, timeout=300)
    assert "taken from" not in fresh.stderr
    (record,) = [json.loads(p.read_text()) for p in (kit_home / "runs" / "web-traffic").glob("*/run.json")]
    (clean,) = [json.loads(p.read_text()) for p in (tmp_path / "fresh" / "runs" / "web-traffic").glob("*/run.json")]
    assert record["cv"]["fold_scores"] == clean["cv"]["fold_scores"]
    assert record["submission"]["sha256"] == clean["submission"]["sha256"]


def test_a_live_processs_temp_files_are_kept(tmp_path):
    live = tmp_path / f".x.csv.{io.temp_tag()}abc"
    dead = tmp_path / f".x.csv.tmp-{2**22 + 5}-{io.host_tag()}-abc"
    other_host = tmp_path / f".x.csv.tmp-{2**22 + 5}-00000000-abc"
    for path in (live, dead, other_host):
        path.write_text("x")
    assert io.sweep_leftovers(tmp_path) == [dead]
    assert live.exists() and other_host.exists()


def test_stale_journal_lock_is_recovered_at_once(data_dir, kit_home):
    journal = kit_home / "runs" / "titanic" / "optuna.journal"
    journal.parent.mkdir(parents=True)
    journal.touch()
    os.symlink(journal, f"{journal}.lock")  # what Optuna's own lock leaves after kill -9
    started = time.perf_counter()
    result = run_script("tune.py", "titanic", "--recipe", "logreg", "--trials", "1", "--folds", "3",
                        env=env_with(KIT_HOME=str(kit_home)))
    assert result.returncode == 0, result.stderr
    assert "removed a stale journal lock" in result.stderr
    assert time.perf_counter() - started < 25  # Optuna alone would wait out a 30 s grace period
    assert not os.path.lexists(f"{journal}.lock")



@pytest.mark.parametrize("line", ["garbage", '{"foo": 1}', "[1, 2]"])
def test_a_damaged_tuning_journal_is_one_line_and_left_as_it_is(data_dir, kit_home, line):
    journal = kit_home / "runs" / "titanic" / "optuna.journal"
    env = env_with(KIT_HOME=str(kit_home))
    tune = ("tune.py", "titanic", "--recipe", "logreg", "--trials", "1", "--folds", "3")
    assert run_script(*tune, env=env).returncode == 0
    good = journal.read_bytes()
    journal.write_bytes(good + line.encode() + b"\n")  # a line edited by hand after the study's own
    damaged = journal.read_bytes()
    for args in (tune, ("train.py", "titanic", "--recipe", "logreg", "--params", "best", "--folds", "3")):
        result = run_script(*args, env=env)
        assert result.returncode == 6, result.stderr
        assert f"tuning journal {journal} is damaged at line" in result.stderr
        assert "Traceback" not in result.stderr
    assert journal.read_bytes() == damaged  # the study's trials are not touched


def test_a_journal_line_cut_short_by_a_killed_writer_is_removed(data_dir, kit_home):
    journal = kit_home / "runs" / "titanic" / "optuna.journal"
    env = env_with(KIT_HOME=str(kit_home))
    tune = ("tune.py", "titanic", "--recipe", "logreg", "--trials", "1", "--folds", "3")
    assert run_script(*tune, env=env).returncode == 0
    journal.write_bytes(journal.read_bytes() + b'{"op_code":4,"worker_id":"w","study')  # kill -9 mid-line
    result = run_script(*tune[:-4], "--trials", "2", "--folds", "3", env=env)
    assert result.returncode == 0, result.stderr
    assert "removed the last line of tuning journal" in result.stderr
    assert all(json.loads(line)["op_code"] >= 0 for line in journal.read_text().splitlines())
    assert "2 complete" in result.stdout

# 7. A token file others can read gets the toolkit's own warning with the fix.
def test_readable_kaggle_token_is_warned_about(fake_kaggle, kit_home):
    from conftest import kaggle_env

    env = kaggle_env(kit_home)
    token = Path(env["KAGGLE_CONFIG_DIR"]) / "kaggle.json"
    token.write_text(json.dumps({"username": fake_kaggle.state.username, "key": fake_kaggle.state.key}))
    token.chmod(0o644)
    result = run_script("download.py", "titanic", env=env)
    assert result.returncode == 0, result.stderr
    assert f"chmod 600 {token}" in result.stderr
    token.chmod(0o600)
    again = run_script("download.py", "titanic", env=env)
    assert again.returncode == 0 and "chmod 600" not in again.stderr


# 8. Atomically written files follow the umask.
def test_atomic_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = io.write_text_atomic(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_where_posix_calls_are_missing_the_toolkit_falls_back(tmp_path, monkeypatch):
    """Native Windows (untested there: the CI is Linux) lacks os.fchmod before Python 3.13 and fcntl, and its
    os.kill(pid, 0) would end the process or signal a console group. What each fallback does is checked here."""
    from types import SimpleNamespace

    monkeypatch.delattr(os, "fchmod")
    assert io.write_text_atomic(tmp_path / "a.txt", "x").read_text() == "x"

    def never(*args):
        raise AssertionError("os.kill called")

    token = tmp_path / "kaggle" / "kaggle.json"
    token.parent.mkdir()
    token.write_text("{}")
    token.chmod(0o644)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(token.parent))
    assert kaggle_api.warn_if_token_readable() == [token]
    monkeypatch.setattr(os, "kill", never)
    monkeypatch.setattr(os, "name", "nt")
    alive = io.pid_alive(2 ** 22 + 1)  # no such pid: counted alive, so its files are kept, never its work lost
    windows_warns = kaggle_api.warn_if_token_readable()  # Windows files read as 0o666: no mode to warn about
    monkeypatch.undo()
    assert alive and windows_warns == []

    calls = []

    def locking(fd, mode, nbytes):
        calls.append((mode, os.lseek(fd, 0, os.SEEK_CUR), nbytes))
        if len(calls) <= 2:  # held elsewhere: msvcrt's LK_LOCK gives up after its own 10 s
            raise OSError(errno.EDEADLK, "Resource deadlock avoided")

    monkeypatch.setattr(io, "fcntl", None)
    monkeypatch.setattr(io, "msvcrt", SimpleNamespace(LK_LOCK=1, LK_UNLCK=0, locking=locking), raising=False)
    lock = io.FileLock(tmp_path / "journal.log.flock")
    assert lock.acquire()
    os.write(lock._fd, b"moved")  # the next lock call must seek back to byte 0
    lock.release()
    assert calls == [(1, 0, 1)] * 3 + [(0, 0, 1)] and lock._fd is None


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open descriptors in Linux's /proc")
def test_a_lock_that_cannot_be_taken_leaves_no_descriptor_open(tmp_path, monkeypatch):
    """A file system without locks (or Ctrl-C while waiting): the error goes up, the lock file's descriptor is closed,
    and release() afterwards does nothing."""
    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(io.fcntl, "flock", no_locks)
    lock = io.FileLock(tmp_path / "x.flock")
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(OSError, match="No locks"):
        lock.acquire()
    assert len(os.listdir("/proc/self/fd")) == before and lock._fd is None
    lock.release()


# 9. Smaller ones.
@pytest.mark.parametrize(("column", "value", "message"), [
    ("SalePrice", "-5", r"SalePrice must be a positive number on every row; row 3 \(Id 3\) \(1 row\(s\) in all; the "
                        r"first holds -5\)"),  # as written, not numpy's np.int64(-5)
    ("SalePrice", "cheap", r"SalePrice must be numeric; row 3 \(Id 3\) \(1 row\(s\) in all; the first holds 'cheap'\)"),
    # >= 0 alone let it through, and its squares overflowed inside the linear members: a traceback
    ("SalePrice", "1e308", r"SalePrice must be at most 1,000,000,000 dollars; row 3 "),  # overflowed the stack
    ("LotArea", "inf", r"LotArea must be a finite number; row 3 "),  # "inf" reads as a number >= 0
    ("GarageArea", "1e12", r"GarageArea must be in 0\.\.100000; row 3 \(Id 3\) \(1 row\(s\) in all; the first holds "
                           r"1000000000000\.0\)"),
])
def test_value_errors_name_the_row(shared_kaggle, tmp_path, column, value, message):
    folder = tmp_path / HP.slug
    shutil.copytree(shared_kaggle / HP.slug, folder)
    table = pd.read_csv(folder / "train.csv", keep_default_na=False, dtype=str)
    table.loc[2, column] = value
    table.to_csv(folder / "train.csv", index=False)
    with pytest.raises(DataError, match=message):
        data.load(HP, tmp_path)


@pytest.mark.parametrize(("file", "column"), [("test.csv", "Ticket"), ("train.csv", "Sex")])
def test_a_text_column_with_a_gap_is_refused_naming_the_row(shared_kaggle, tmp_path, kit_home, file, column):
    """An empty ticket in test.csv ended in a traceback inside the features; an empty sex trained quietly."""
    folder = titanic_copy(shared_kaggle, tmp_path)
    table = pd.read_csv(folder / file, keep_default_na=False, dtype=str)
    table.loc[4, column] = ""
    table.to_csv(folder / file, index=False)
    result = run_script("train.py", "titanic", "--recipe", "fast",
                        env=env_with(KIT_HOME=str(kit_home), KAGGLE_DATA_DIR=str(tmp_path)))
    line = one_error_line(result, 3)
    assert f"{file}: {column} must be text on every row (no gaps); row 5 (PassengerId" in line, line
    assert "the first holds nothing" in line and not (kit_home / "runs").exists()


def _resaved(sep: str = ",", index: bool = False):
    def change(blob: bytes) -> bytes:
        table = pd.read_csv(BytesIO(blob), dtype=str, keep_default_na=False)
        return table.to_csv(sep=sep, index=index).encode()
    return change


# What a spreadsheet or a pandas re-save does to a file: each named for what it is and what to do, not "truncated"
# or "missing every column".
@pytest.mark.parametrize(("change", "message"), [
    (_resaved(sep=";"), "train.csv: its columns are separated by semicolons, not commas - save it as comma-separated"),
    (_resaved(sep="\t"), "train.csv: its columns are separated by tabs, not commas"),
    (_resaved(index=True), "train.csv has a column with no name in its header (read as 'Unnamed: 0')"),
    (lambda b: b.decode().encode("utf-16"), "train.csv is not plain CSV text: it is UTF-16 text"),
    (gzip.compress, "train.csv is not plain CSV text: it is gzip-compressed; unpack it"),
    (lambda b: b.replace(b"Survived", b"survived", 1), "column names must match exactly (case and spaces count): "
                                                       "'survived' should be 'Survived'"),
], ids=["semicolons", "tabs", "pandas-index", "utf-16", "gzip", "case"])
def test_a_resaved_train_file_is_named_for_what_it_is(shared_kaggle, tmp_path, change, message):
    folder = titanic_copy(shared_kaggle, tmp_path)
    (folder / "train.csv").write_bytes(change((folder / "train.csv").read_bytes()))
    with pytest.raises(DataError) as caught:
        data.load(TITANIC, tmp_path)
    assert message in str(caught.value), str(caught.value)


def _edited_line(row: int, tail: str):
    def change(blob: bytes) -> bytes:
        lines = blob.decode().splitlines(keepends=True)
        lines[row] = lines[row].rstrip("\r\n") + tail + "\n"
        return "".join(lines).encode()
    return change


def _semicolons_with_commas_in_a_name(blob: bytes) -> bytes:
    table = pd.read_csv(BytesIO(blob), dtype=str, keep_default_na=False)
    table.loc[2, "Name"] = "Heikkinen, Miss., Laina, x"  # more fields than the header on a comma read: pandas fails
    return table.to_csv(sep=";", index=False).encode()


# A file edited by hand so that pandas cannot split it into fields: the row, and what to look for there.
@pytest.mark.parametrize(("change", "message"), [
    (_edited_line(5, ",x,y"), "train.csv: row 5 has 14 fields where the header has 12 - a comma too many, or "
                              "quotes missing around a text that holds commas; fix that row"),
    (_semicolons_with_commas_in_a_name, "train.csv: its columns are separated by semicolons, not commas"),
], ids=["stray-commas", "semicolons-and-commas"])
def test_a_line_pandas_cannot_split_is_named(shared_kaggle, tmp_path, kit_home, change, message):
    folder = titanic_copy(shared_kaggle, tmp_path)
    (folder / "train.csv").write_bytes(change((folder / "train.csv").read_bytes()))
    result = run_script("train.py", "titanic", "--recipe", "fast",
                        env=env_with(KIT_HOME=str(kit_home), KAGGLE_DATA_DIR=str(tmp_path)))
    line = one_error_line(result, 3)
    assert message in line, line
    assert not (kit_home / "runs").exists()


def test_duplicate_test_ids_fail_at_load_with_exit_3(shared_kaggle, tmp_path, kit_home):
    folder = titanic_copy(shared_kaggle, tmp_path)
    test = pd.read_csv(folder / "test.csv")
    test.loc[1, "PassengerId"] = test.loc[0, "PassengerId"]
    test.to_csv(folder / "test.csv", index=False)
    result = run_script("train.py", "titanic", "--recipe", "fast",
                        env=env_with(KIT_HOME=str(kit_home), KAGGLE_DATA_DIR=str(tmp_path)))
    assert "test.csv: PassengerId must be unique" in one_error_line(result, 3)
    assert not (kit_home / "runs").exists()


def test_test_ids_must_match_the_sample_submission(shared_kaggle, tmp_path):
    folder = titanic_copy(shared_kaggle, tmp_path)
    test = pd.read_csv(folder / "test.csv")
    test.iloc[:-1].to_csv(folder / "test.csv", index=False)
    with pytest.raises(DataError, match=r"1 sample-submission ids are not in test\.csv \(e\.g\. 1309\)"):
        data.load(TITANIC, tmp_path)


def test_zip_slip_message_names_the_archive(shared_kaggle, tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    zip_folder(shared_kaggle / "titanic", mirror / "titanic.zip", {"../evil.csv": b"x"})
    with pytest.raises(DataError, match=rf"{mirror / 'titanic.zip'}: member '../evil.csv' would be written outside"):
        data.fetch(TITANIC, mirror)


def test_credentials_help_names_every_way():
    for way in ("kaggle.json", "KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY", "chmod 600"):
        assert way in kaggle_api.CREDENTIALS_HELP


@pytest.mark.parametrize("path", ["reports/leaderboard.html", ".training/.tmp-1-abcdef01-owner",
                                  "resume/titanic/batch-x.json"])
def test_what_the_toolkit_writes_in_the_repo_is_git_ignored(path):
    """The home folder is the current directory by default: the repo's root, where git status should stay clean."""
    result = subprocess.run(["git", "check-ignore", path], cwd=ROOT, capture_output=True)
    assert result.returncode == 0


def test_a_model_whose_optional_part_is_not_installed_says_what_to_install(data_dir, tmp_path, kit_home):
    """`pip install .` is tabular-only: a torch model there is one line naming the extra, not an ImportError."""
    from common.cli import optional_part

    blocked = tmp_path / "blocked" / "torch"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n")
    result = run_script("train.py", "digit-recognizer", "--recipe", "fast",
                        env=env_with(KIT_HOME=str(kit_home), PYTHONPATH=str(tmp_path / "blocked")))
    line = one_error_line(result, 2)
    assert "this needs torch, which is not installed" in line and "pip install -e '.[torch]'" in line
    assert "'.[vision]'" in line and "make setup" in line
    # an import error that is not a missing optional part is a bug: it keeps its traceback
    assert optional_part(ImportError("cannot import name 'x' from 'torch'", name="torch")) is None
    assert optional_part(ModuleNotFoundError("No module named 'lightgbm'", name="lightgbm")) is None



def reader_leaves(args: list[str], lines_read: int) -> tuple[int, str]:
    """Run a script with its output piped to a reader that reads ``lines_read`` lines and leaves (``| head``);
    returns the exit code and what the script said on stderr."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / args[0]), *args[1:]], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    for _ in range(lines_read):
        proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    return proc.wait(timeout=300), err


def test_a_reader_that_leaves_ends_the_command_quietly_as_other_tools(data_dir, kit_home):
    """`train.py --list-recipes titanic | head -1`: exit 141 as a tool that SIGPIPE ends, no traceback, and no line
    either, unless work stopped that the same command goes on from."""
    code, err = reader_leaves(["train.py", "--list-recipes", "titanic"], lines_read=0)
    assert (code, err) == (141, "")
    code, err = reader_leaves(["compare.py", "titanic", "--recipes", "logreg", "rule", "--repeats", "1"], lines_read=1)
    assert code == 141 and "Traceback" not in err and "Exception ignored" not in err, err
    assert err.splitlines()[-1] == ("stopped: the program reading the output (e.g. head) closed it; 5 finished "
                                    "fold(s) kept under resume/: the same command goes on from them"), err
