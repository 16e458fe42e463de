"""Optuna tuning on the real Titanic files, over the embedded journal storage and a real PostgreSQL."""

import errno
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

import competitions
from common import kaggle_runs, runner, runs, storages, tuning, tuning_turns, tuning_workers
from common.competition import Recipe
from common.errors import TuningError, UsageError
from common.params import params_from_file, resolve
from common.runs import OWN_PARAMS
from common.tuning_workers import WorkersFailed, check_workers

from conftest import ROOT, flock_is_held, run_script, sigint_as_from_a_terminal

TITANIC = competitions.get("titanic")


def finished(study):
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))


def test_tune_records_fold_scores_and_best_trains_to_the_same_cv(data_dir, storage_url):
    study = tuning.tune(TITANIC, "lgbm", n_trials=6, storage_url=storage_url, n_folds=3)
    assert len(finished(study)) == 6
    assert study.direction.name == "MAXIMIZE"
    for trial in study.get_trials(states=(TrialState.COMPLETE,)):
        assert len(trial.user_attrs["fold_scores"]) == 3
        assert trial.value == pytest.approx(np.mean(trial.user_attrs["fold_scores"]))
        assert trial.user_attrs["seconds"] > 0
        assert set(TITANIC.recipes["lgbm"].params) <= set(trial.user_attrs["params"])

    params, source = tuning.best_params(TITANIC, "lgbm", storage_url)
    record, _ = runner.train(TITANIC, "lgbm", seed=0, n_folds=3, params=params, params_source=source,
                             progress=False)
    assert record["params_source"]["study"] == "titanic:lgbm"
    assert record["params_source"]["trial"] == study.best_trial.number
    assert record["cv"]["mean"] == pytest.approx(study.best_value)  # same folds, same seed: same CV
    # ... the best of six tries on those folds: train.py and submit.py say that this CV is optimistic
    note = kaggle_runs.tuned_note(TITANIC, record)
    assert note is not None and "optimistic" in note and "compare.py titanic --recipes lgbm --tuned" in note
    untuned, _ = runner.train(TITANIC, "lgbm", seed=0, n_folds=3, progress=False)
    assert kaggle_runs.tuned_note(TITANIC, untuned) is None


def test_tuned_params_scored_on_folds_the_study_never_saw_are_not_called_optimistic(data_dir, kit_home):
    study = tuning.tune(TITANIC, "lgbm", n_trials=7, n_folds=3)
    params, source = tuning.best_params(TITANIC, "lgbm")
    assert source["trial"] > 0 and source["folds_hash"] == study.user_attrs["folds_hash"]
    same, _ = runner.train(TITANIC, "lgbm", n_folds=3, params=params, params_source=source, progress=False)
    other, _ = runner.train(TITANIC, "lgbm", n_folds=5, params=params, params_source=source, progress=False)
    assert same is not None and same.tuned and kaggle_runs.tuned_note(TITANIC, same) is not None
    assert other is not None and not other.tuned and kaggle_runs.tuned_note(TITANIC, other) is None


def test_the_same_command_resumes_the_study(data_dir, storage_url):
    tuning.tune(TITANIC, "logreg", n_trials=3, storage_url=storage_url, n_folds=3)
    study = tuning.tune(TITANIC, "logreg", n_trials=5, storage_url=storage_url, n_folds=3)
    assert len(finished(study)) == 5
    assert [t.number for t in study.trials] == list(range(len(study.trials)))
    # the recipe's own params were scored once, first, and not queued again by the second command
    own = [t for t in study.trials if t.user_attrs.get(OWN_PARAMS)]
    assert [t.number for t in own] == [0] and own[0].params == {"C": TITANIC.recipes["logreg"].params["C"]}
    # ... and the second command's sampler went on from there, not from the first command's random points again
    tried = [t.params["C"] for t in study.trials]
    assert len(set(tried)) == len(tried), tried


def test_a_study_goes_on_only_with_the_folds_and_seed_its_trials_were_scored_with(data_dir, kit_home):
    """Its best is a max over its trials and the pruner compares their running means: trials on other folds or with
    another model seed would mix CVs that cannot be compared. Refused (exit 6), nothing added to the study."""
    study = tuning.tune(TITANIC, "logreg", n_trials=2, n_folds=3)
    assert study.user_attrs["n_folds"] == 3 and study.user_attrs["model_seed"] == 0
    assert len(study.user_attrs["folds_hash"]) == 16
    assert {t.user_attrs["seed"] for t in study.trials} == {0}
    with pytest.raises(TuningError, match=r"scored its trials on 3 folds, not 5: .* give --folds 3 to go on"):
        tuning.tune(TITANIC, "logreg", n_trials=4, n_folds=5)
    result = run_script("tune.py", "titanic", "--recipe", "logreg", "--trials", "4", "--folds", "3", "--seed", "1")
    assert result.returncode == 6
    assert result.stderr.strip().splitlines()[-1] == (
        "error: study 'titanic:logreg' scored its trials with model seed 0, not 1: their CVs could not be compared; "
        "give --seed 0 to go on with it, or tune into another storage (--storage FILE.journal)")
    assert "Using an existing study" not in result.stderr  # Optuna's own INFO line, said again by ours
    storage, _ = storages.open_storage(None, TITANIC.name)
    study = optuna.load_study(study_name="titanic:logreg", storage=storage)
    assert len(study.trials) == 2
    # the files changed since (here: the recorded folds are another split's): the same refusal, naming why
    study.set_user_attr("folds_hash", "0123456789abcdef")
    with pytest.raises(TuningError, match="on other folds .*the competition's files changed since"):
        tuning.tune(TITANIC, "logreg", n_trials=4, n_folds=3)
    # a study tuned before these were recorded: its trials' fold count and seed stand in for them
    for key in ("n_folds", "model_seed", "folds_hash"):
        study.set_user_attr(key, None)
    with pytest.raises(TuningError, match="on 3 folds, not 5"):
        tuning.tune(TITANIC, "logreg", n_trials=4, n_folds=5)
    assert len(finished(tuning.tune(TITANIC, "logreg", n_trials=3, n_folds=3))) == 3
    # a study whose first command stopped before any trial finished takes the next command's settings
    fresh = tuning.open_study(TITANIC, "lgbm", storage)
    tuning.pin_scoring(fresh, n_folds=10, model_seed=4)
    tuning.pin_scoring(fresh, n_folds=5, model_seed=0)
    assert (fresh.user_attrs["n_folds"], fresh.user_attrs["model_seed"]) == (5, 0)


@pytest.mark.parametrize("name", competitions.names())
def test_every_search_space_can_say_its_recipes_own_params(name):
    """A study's first trial is the recipe untuned: every space must reach its recipe's defaults (a default out of
    its range could never be tuned back to)."""
    comp = competitions.get(name)
    tunable = {n: r for n, r in comp.recipes.items() if r.space is not None}
    assert tunable
    for recipe_name, recipe in tunable.items():
        own = tuning.own_trial_params(recipe)
        assert own is not None, f"{name}/{recipe_name}: the space cannot say the recipe's params"
        assert {**recipe.params, **recipe.space(optuna.trial.FixedTrial(own))} == recipe.params


def test_when_the_recipes_defaults_change_the_study_scores_the_new_ones_and_measures_against_them(data_dir,
                                                                                                  monkeypatch):
    study = tuning.tune(TITANIC, "logreg", n_trials=1, n_folds=3)
    assert tuning.own_trial(study).params == {"C": 0.1}
    base = TITANIC.recipes["logreg"]
    monkeypatch.setitem(TITANIC.recipes, "logreg", Recipe(base.description, base.make_model, {"C": 0.5}, base.space))
    study = tuning.tune(TITANIC, "logreg", n_trials=2, n_folds=3)
    assert [t.params for t in study.trials if t.user_attrs.get(OWN_PARAMS)] == [{"C": 0.1}, {"C": 0.5}]
    assert tuning.own_trial(study).params == {"C": 0.5}


def test_fits_that_did_not_converge_are_counted_on_the_trials_line(data_dir, monkeypatch, capsys):
    """scikit-learn's ConvergenceWarning (several lines each) would interleave with the trial lines."""
    base = TITANIC.recipes["logreg"]

    def stops_short(params, seed):  # one solver iteration: never converges
        return base.make_model(params, seed).set_params(model__max_iter=1)

    monkeypatch.setitem(TITANIC.recipes, "logreg", Recipe(base.description, stops_short, base.params, base.space))
    study = tuning.tune(TITANIC, "logreg", n_trials=1, n_folds=3)
    assert study.trials[0].user_attrs["not_converged"] == 3
    out, err = capsys.readouterr()
    assert "trial 0 complete" in out and "(3 fits did not converge)" in out
    assert "ConvergenceWarning" not in err


def test_a_default_out_of_its_range_is_not_queued(data_dir, monkeypatch):
    base = TITANIC.recipes["logreg"]
    monkeypatch.setitem(TITANIC.recipes, "logreg", Recipe(base.description, base.make_model, {"C": 50.0},
                                                          base.space))
    assert tuning.own_trial_params(TITANIC.recipes["logreg"]) is None
    study = tuning.tune(TITANIC, "logreg", n_trials=2, n_folds=3)
    assert len(finished(study)) == 2 and not [t for t in study.trials if t.user_attrs.get(OWN_PARAMS)]


def test_when_no_trial_beats_the_recipe_its_run_is_not_called_tuned(data_dir, kit_home):
    """One trial: the recipe's own params, the study's best. --params best trains the recipe as it is, with the same
    CV as the untuned run and no 'optimistic' note; the summary says so and compare.py does not score it twice."""
    result = run_script("tune.py", "titanic", "--recipe", "logreg", "--trials", "1", "--folds", "3")
    assert result.returncode == 0, result.stderr
    assert "trial 0 complete" in result.stdout and "(the recipe's own params)" in result.stdout
    assert "titanic:logreg: no trial beat the recipe's own params" in result.stdout
    assert "python scripts/train.py titanic --recipe logreg --folds 3" in result.stdout
    params, source = tuning.best_params(TITANIC, "logreg")
    assert source[OWN_PARAMS] and source["trial"] == 0
    record, _ = runner.train(TITANIC, "logreg", n_folds=3, params=params, params_source=source, progress=False)
    untuned, _ = runner.train(TITANIC, "logreg", n_folds=3, progress=False)
    assert record["cv"]["mean"] == untuned["cv"]["mean"] == source["value"]
    assert kaggle_runs.tuned_note(TITANIC, record) is None
    compared = run_script("compare.py", "titanic", "--recipes", "logreg", "--tuned", "--repeats", "1", "--folds", "3")
    assert compared.returncode == 0, compared.stderr
    assert "(logreg: no tuning trial beat the recipe's own params)" in compared.stdout
    assert "tuned #" not in compared.stdout


def test_pruning_stops_hopeless_settings_after_the_first_folds(data_dir, monkeypatch):
    # C down to 1e-7 makes logistic regression predict the majority class only: hopeless.
    def space(trial):
        return {"C": trial.suggest_float("C", 1e-7, 10.0, log=True)}

    base = TITANIC.recipes["logreg"]
    monkeypatch.setitem(TITANIC.recipes, "logreg", Recipe(base.description, base.make_model, base.params, space))
    study = tuning.tune(TITANIC, "logreg", n_trials=24, n_folds=5)
    pruned = study.get_trials(states=(TrialState.PRUNED,))
    assert pruned, "no trial was pruned"
    for trial in pruned:
        assert len(trial.user_attrs["fold_scores"]) < 5
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    # the pruned settings were the bad ones: their running mean is below the best complete trial's
    best = max(t.value for t in complete)
    assert all(t.value < best for t in pruned)
    assert any(t.params["C"] < 1e-3 for t in pruned)


def test_two_workers_share_one_postgres_study(data_dir, postgres_url):
    study = tuning.tune(TITANIC, "lgbm", n_trials=10, storage_url=postgres_url, workers=2, n_folds=3)
    trials = study.get_trials()
    numbers = [t.number for t in trials]
    assert len(set(numbers)) == len(numbers) == len(trials)
    assert numbers == list(range(len(trials)))
    assert 10 <= len(finished(study)) <= 11  # at most workers-1 over when both start a trial at once
    by_pid: dict[int, list] = {}
    for t in finished(study):
        by_pid.setdefault(t.user_attrs["pid"], []).append(t)
    assert len(by_pid) == 2, "both workers must have run trials"
    assert sum(len(v) for v in by_pid.values()) == len(finished(study))
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert study.best_value == max(t.value for t in complete)
    assert all(max((t.value for t in v if t.state == TrialState.COMPLETE), default=0) <= study.best_value
               for v in by_pid.values())


def running_trials(storage_url) -> list:
    """The study's running trials that have finished at least one fold (so they are mid-trial)."""
    try:
        storage, _ = storages.open_storage(storage_url, TITANIC.name)
        study = optuna.load_study(study_name="titanic:lgbm", storage=storage)
    except KeyError:
        return []
    if len(study.trials) <= 2:
        return []
    return [t for t in study.get_trials(states=(TrialState.RUNNING,)) if len(t.user_attrs.get("fold_scores", [])) >= 1]


def journal_lock_is_free(storage_url: str) -> bool:
    """False while the journal's writers' lock is held: by a worker frozen mid-append, reading the journal (which
    takes that lock) would wait for ever. A database storage has no such lock."""
    return "://" in storage_url or not flock_is_held(f"{storage_url}.flock")


def freeze_mid_trial(proc: subprocess.Popen, storage_url: str, timeout: float = 120):
    """SIGSTOP the worker while a trial is mid-way and return that trial.

    A Titanic trial takes well under a second, so a trial seen running may finish before a kill lands: the worker
    is frozen first and the trial checked again while nothing can move it on."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if running_trials(storage_url):
            os.kill(proc.pid, signal.SIGSTOP)
            os.waitpid(proc.pid, os.WUNTRACED)  # stopped for sure: it can take no lock after the check below
            still = running_trials(storage_url) if journal_lock_is_free(storage_url) else []
            if still:
                return still[0]
            os.kill(proc.pid, signal.SIGCONT)
        time.sleep(0.05)
    raise AssertionError("no trial started")


def kill_tuning_mid_trial(storage_url: str, env: dict[str, str]):
    """Start scripts/tune.py, wait until a trial is mid-way, kill -9 the process; return that trial."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "tune.py"), "titanic", "--recipe", "lgbm",
                             "--trials", "200", "--storage", storage_url], env={**os.environ, **env}, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return freeze_mid_trial(proc, storage_url)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


def test_kill_minus_9_mid_trial_then_resume(data_dir, storage_url, kit_home):
    journal = storage_url or str(kit_home / "runs" / "titanic" / "optuna.journal")
    victim = kill_tuning_mid_trial(journal, {"KIT_HOME": str(kit_home)})
    storage, _ = storages.open_storage(journal, TITANIC.name)
    before = optuna.load_study(study_name="titanic:lgbm", storage=storage)
    done_before = {t.number: t.value for t in before.get_trials(states=(TrialState.COMPLETE,))}
    running = before.get_trials(states=(TrialState.RUNNING,))
    assert victim.number in [t.number for t in running]

    target = len(finished(before)) + 3
    study = tuning.tune(TITANIC, "lgbm", n_trials=target, storage_url=journal, n_folds=5)
    dead = study.trials[victim.number]
    assert dead.state == TrialState.FAIL
    retried = [t for t in study.trials if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retried) == 1 and retried[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert retried[0].params == dead.params
    # nothing else lost: every trial completed before the kill is still there with its value
    for number, value in done_before.items():
        assert study.trials[number].state == TrialState.COMPLETE and study.trials[number].value == value
    assert not study.get_trials(states=(TrialState.RUNNING,))
    assert len(finished(study)) >= target


def test_a_trial_stopped_by_sigterm_ends_in_one_line_not_a_traceback(data_dir, kit_home):
    """Optuna logs a trial that an interrupt stops as a failure, with the traceback of wherever the fit was.

    SIGTERM goes once a trial is mid-way (not frozen there first: a LightGBM fit stopped with SIGSTOP and sent
    SIGTERM before SIGCONT hung in 2 of 8 tries here, one that was not stopped never did in 20)."""
    journal = str(kit_home / "runs" / "titanic" / "optuna.journal")
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "tune.py"), "titanic", "--recipe", "lgbm",
                             "--trials", "200", "--storage", journal], env={**os.environ, "KIT_HOME": str(kit_home)},
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not running_trials(journal) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert running_trials(journal), "no trial started"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == "terminated: nothing half-written was kept"
    assert "Traceback" not in err and " failed with " not in err, err
    storage, _ = storages.open_storage(journal, TITANIC.name)
    study = optuna.load_study(study_name="titanic:lgbm", storage=storage)
    # the trial the signal stopped is failed (none, in the rare case it came between two trials); the rest stay
    *kept, last = study.trials
    assert last.state in (TrialState.FAIL, TrialState.COMPLETE, TrialState.PRUNED)
    assert kept and all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in kept)


def _sleep_through(ignore_sigterm: bool, ready) -> None:
    if ignore_sigterm:  # as a worker hung in its OpenMP runtime: SIGTERM never ends it
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ready.set()
    time.sleep(120)


def test_workers_that_do_not_stop_on_sigterm_are_killed_after_the_grace(caplog):
    """Ctrl-C must end the command: a worker that SIGTERM does not end is killed, else Python's exit would wait for
    it forever (a LightGBM fit hung so in libgomp, on two hosts)."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    ready = [ctx.Event() for _ in range(2)]
    procs = [ctx.Process(target=_sleep_through, args=(ignore, event)) for ignore, event in
             zip((True, False), ready, strict=True)]
    for proc in procs:
        proc.start()
    assert all(event.wait(30) for event in ready)
    start = time.monotonic()
    tuning_workers.stop_processes(procs, grace=2.0)
    assert time.monotonic() - start < 30
    assert [proc.exitcode for proc in procs] == [-signal.SIGKILL, -signal.SIGTERM]
    assert "1 worker(s) did not stop within 2 s of SIGTERM and were killed" in caplog.text


def test_a_journal_whose_disk_fills_mid_study_is_named_in_the_error_and_the_next_command_goes_on(data_dir,
                                                                                                  kit_home,
                                                                                                  monkeypatch):
    """Optuna answers a trial end it could not record with "assert False, 'Should not reach.'", which hid the full
    disk behind a traceback; the command says which file did not fit instead."""
    appends = 0
    append = storages.JournalFile.append_logs

    def fills_up(self, logs):
        nonlocal appends
        appends += 1
        if appends > 40:  # a few trials in: each takes about ten appends
            with storages.naming(self.path):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        append(self, logs)

    monkeypatch.setattr(storages.JournalFile, "append_logs", fills_up)
    with pytest.raises(OSError) as full:
        tuning.tune(TITANIC, "logreg", n_trials=30, n_folds=3)
    assert full.value.errno == errno.ENOSPC and full.value.filename.endswith("optuna.journal")
    # space freed, the same command again (this process stands for the one that ended): the trial whose end was
    # lost is failed and re-queued, as after kill -9
    monkeypatch.setattr(storages.JournalFile, "append_logs", append)
    monkeypatch.setattr(tuning, "pid_alive", lambda pid: False)
    study = tuning.tune(TITANIC, "logreg", n_trials=6, n_folds=3)
    assert len(finished(study)) == 6 and [t.state for t in study.trials].count(TrialState.FAIL) == 1


def test_a_command_whose_every_worker_failed_fails_with_their_exit_code(caplog):
    check_workers([0, 0])
    check_workers([0, 7])  # the other worker finished the work
    assert "1 of 2 workers stopped early (exit code 7); the others finished the work" in caplog.text
    with pytest.raises(WorkersFailed, match=r"^all 2 workers stopped \(exit codes 7, 7\); the trials") as full:
        check_workers([7, 7])  # e.g. the disk under the journal is full: each worker said so in a line
    assert full.value.exit_code == 7
    with pytest.raises(WorkersFailed, match=r"\(exit code 3; killed by SIGKILL\) \(SIGKILL: the out-of-memory "
                       r"killer\?") as mixed:
        check_workers([3, -signal.SIGKILL])
    assert mixed.value.exit_code == 1
    with pytest.raises(WorkersFailed) as killed:
        check_workers([-signal.SIGKILL, -signal.SIGKILL])
    assert killed.value.exit_code == 128 + signal.SIGKILL
    with pytest.raises(BrokenPipeError):  # `tune.py ... | head`: each worker ended quietly, and so does the command
        check_workers([141, 141])


def test_ctrl_c_stops_the_workers_in_one_line(data_dir, kit_home):
    """A terminal's Ctrl-C reaches the whole process group: the main process stops its workers and says so once,
    with no worker's traceback (a stop that lands in Optuna's own bookkeeping broke it on the way out)."""
    if (os.cpu_count() or 1) < 2:
        pytest.skip("two workers need two cores")
    journal = str(kit_home / "runs" / "titanic" / "optuna.journal")
    with sigint_as_from_a_terminal():
        proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "tune.py"), "titanic", "--recipe", "lgbm",
                                 "--trials", "300", "--workers", "2", "--storage", journal],
                                env={**os.environ, "KIT_HOME": str(kit_home)}, cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline, running = time.time() + 120, 0
        while running < 2 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
            running = len(running_trials(journal))
        # what the loop saw: read again, a worker may already have finished that trial (a Titanic trial is ~1 s)
        assert running == 2, "both workers must be mid-trial"
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err
    assert [line for line in err.splitlines() if "nothing half-written" in line] == [
        "interrupted: nothing half-written was kept"], err
    assert "Traceback" not in err and " failed with " not in err, err
    assert "Using an existing study" not in err  # Optuna's INFO lines, quiet in the worker processes too


def test_unknown_recipe_is_one_line(data_dir):
    result = run_script("tune.py", "titanic", "--recipe", "nope", "--trials", "1")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: unknown recipe 'nope' for titanic; choose one of: {', '.join(sorted(TITANIC.recipes))}")
    assert {"blend", "default", "fast", "lgbm", "logreg", "rule"} <= set(TITANIC.recipes)


def test_a_stack_tunes_each_member_that_has_a_search_space_then_stacks_their_best(data_dir, kit_home,
                                                                                   monkeypatch):
    """`tune.py house-prices --recipe fast` (a stack of ridge and lasso): one study per member, one after another,
    then the command that stacks their best trials."""
    result = run_script("tune.py", "house-prices", "--recipe", "fast", "--trials", "2", "--folds", "3")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "tuning ridge (1 of 2)" in out and "tuning lasso (2 of 2)" in out
    storage, _ = storages.open_storage(None, "house-prices")
    for member in ("ridge", "lasso"):
        study = optuna.load_study(study_name=f"house-prices:{member}", storage=storage)
        assert len(finished(study)) == 2
        assert f"house-prices:{member}: " in out
    assert out.splitlines()[-1] == ("train the stack with its members' best trials: python scripts/train.py "
                                    "house-prices --recipe fast --params best --folds 3")
    # the same members named as a list: the studies have their trials, so nothing runs again
    again = run_script("tune.py", "house-prices", "--recipe", "ridge,lasso", "--trials", "2", "--folds", "3")
    assert again.returncode == 0, again.stderr
    assert not [line for line in again.stdout.splitlines() if line.startswith("trial ")]
    assert "train the stack" not in again.stdout
    # a stack whose members have no search space, and an end to tuning that was never given: one line each
    HP = competitions.get("house-prices")
    base = HP.recipes["fast"]
    monkeypatch.setitem(HP.recipes, "gbms", Recipe(base.description, base.make_model, base.params,
                                                    members=("gbr", "catboost")))
    with pytest.raises(UsageError, match="no member of stack 'gbms' has a search space"):
        tuning.recipes_to_tune(HP, ["gbms"])
    assert tuning.recipes_to_tune(HP, ["default"]) == (["ridge", "lasso", "elasticnet", "svr", "lgbm"],
                                                       ["gbr", "catboost", "catboost-sqft"])
    endless = run_script("tune.py", "house-prices", "--recipe", "fast")
    assert endless.returncode == 2 and endless.stderr.strip().splitlines()[-1] == (
        "error: give --trials and/or --timeout, or tuning would never stop")


@pytest.fixture
def clocked_tune(monkeypatch):
    """``tuning.tune`` on a clock of our own: a trial of a recipe takes ``costs[recipe]`` seconds, or ``own`` for
    its first trial (the recipe's own params) where set; trials start while the timeout has time left (Optuna's
    rule) until the study has ``n_trials``."""
    state: dict[str, Any] = {"clock": 1000.0, "own": None, "costs": {}, "calls": [], "studies": {}}

    def fake_tune(comp, recipe, n_trials=None, timeout=None, workers=1, **options):
        assert "prepared" in options  # the files and folds loaded once for the command
        state["calls"].append((recipe, n_trials, timeout))
        study = state["studies"].setdefault(recipe, optuna.create_study())
        started = state["clock"]
        while (n_trials is None or len(study.trials) < n_trials) and state["clock"] - started < timeout:
            took = state["own"] if state["own"] and not study.trials else state["costs"][recipe]
            state["clock"] += took
            study.add_trial(optuna.trial.create_trial(value=0.0, user_attrs={"seconds": took}))
        return study

    monkeypatch.setattr(tuning_turns, "tune", fake_tune)
    monkeypatch.setattr(tuning_turns.time, "time", lambda: state["clock"])
    return state


def trial_counts(studies: dict) -> dict[str, int]:
    return {recipe: len(study.trials) for recipe, study in studies.items() if study is not None}


def test_recipes_share_a_timeout_by_what_their_trials_take(clocked_tune):
    """Each recipe's own params first, which times a trial of it; then the rest of the deadline in proportion to
    those times, so a study whose trials take 4 s gets as many as one whose trials take 1 s, not a quarter."""
    clocked_tune["costs"] = {"ridge": 1.0, "svr": 2.0, "lgbm": 4.0}
    said: list[str] = []
    got = tuning_turns.tune_in_turn(TITANIC, ["ridge", "svr", "lgbm"], timeout=107, announce=said.append, rounds=1)
    calls = clocked_tune["calls"]
    assert [c[:2] for c in calls[:3]] == [("ridge", 1), ("svr", 1), ("lgbm", 1)]  # 7 s
    # 100 s left: ridge 1/7 of them; its last trial ran past its share (15 s), so svr gets 2/6 of the 85 s left,
    # lgbm the rest
    shares = {recipe: timeout for recipe, _, timeout in calls[3:]}
    assert shares == {"ridge": pytest.approx(100 / 7), "svr": pytest.approx(85 / 3), "lgbm": pytest.approx(55)}
    assert trial_counts(got) == {"ridge": 16, "svr": 16, "lgbm": 15}  # an equal share: ridge 36, svr 18, lgbm 9
    assert said[0].startswith("3 studies share 1 min 47 s by what a trial of each takes")
    assert said[1:] == ["tuning ridge (1 of 3) for about 14 s: about 14 trials of 1.0s",
                        "tuning svr (2 of 3) for about 28 s: about 14 trials of 2.0s",
                        "tuning lgbm (3 of 3) for about 55 s: about 14 trials of 4.0s"]


@pytest.mark.parametrize(("rounds", "lgbm_share"), [(1, (0.1, 0.3)), (3, (0.7, 1.3))])
def test_later_rounds_share_by_what_the_trials_took_so_far(clocked_tune, rounds, lgbm_share):
    """A recipe's own params are often its cheapest trial: timed on them alone, the dearer study gets a fraction
    of the others' trials; rounds that go by every trial so far give it about as many."""
    clocked_tune["own"] = 1.0
    clocked_tune["costs"] = {"ridge": 1.0, "lasso": 1.0, "lgbm": 8.0}
    said: list[str] = []
    counts = trial_counts(tuning_turns.tune_in_turn(TITANIC, ["ridge", "lasso", "lgbm"], timeout=300,
                                              announce=said.append, rounds=rounds))
    low, high = lgbm_share
    assert low * counts["ridge"] < counts["lgbm"] < high * counts["ridge"], counts
    assert clocked_tune["clock"] - 1000 < 300 + 8  # past the deadline by less than one trial
    if rounds == 3:
        assert "tuning lgbm (3 of 3, round 3 of 3) for about" in said[-1]


def test_a_timeout_spent_before_a_turn_leaves_the_recipe_untuned(clocked_tune):
    clocked_tune["costs"] = {"ridge": 1.0, "svr": 2.0, "lgbm": 4.0}
    said: list[str] = []
    # --trials 1: the first trials are all there is
    tuning_turns.tune_in_turn(TITANIC, ["ridge", "svr", "lgbm"], n_trials=1, timeout=100, announce=said.append)
    assert [c[:2] for c in clocked_tune["calls"]] == [("ridge", 1), ("svr", 1), ("lgbm", 1)] and len(said) == 1
    # the deadline passes during svr's first trial: lgbm gets none, and the others no other trial, which is said
    clocked_tune["studies"].clear()
    got = tuning_turns.tune_in_turn(TITANIC, ["ridge", "svr", "lgbm"], timeout=2.5, announce=said.append)
    assert got["lgbm"] is None and trial_counts(got) == {"ridge": 1, "svr": 1}
    assert said[-1] == ("no time left for another trial of ridge (1.0s a trial), svr (2.0s a trial): the first "
                        "trials took 3 s of the 2 s; a longer --timeout gives more")


def test_a_timeout_shared_by_a_stacks_members_end_to_end(data_dir, kit_home):
    result = run_script("tune.py", "house-prices", "--recipe", "fast", "--timeout", "6", "--folds", "3")
    assert result.returncode == 0, result.stderr
    assert "2 studies share 6 s by what a trial of each takes" in result.stdout
    assert result.stderr.count("finished trials so far") == 2  # where each study is: said once, not every round
    storage, _ = storages.open_storage(None, "house-prices")
    for member in ("ridge", "lasso"):
        study = optuna.load_study(study_name=f"house-prices:{member}", storage=storage)
        assert finished(study)[0].user_attrs.get(OWN_PARAMS)  # timed on the recipe's own params
        assert f"house-prices:{member}: " in result.stdout
    assert "train the stack with its members' best trials" in result.stdout


def test_a_recipe_with_two_names_has_one_study(tmp_path):
    """Digit's ``cnn`` is its ``default``: tuned under either name, one study, and ``--params best`` of either name
    reads it (before, two studies tuned the same recipe apart)."""
    digits = competitions.get("digit-recognizer")
    assert digits.canonical("cnn") == digits.canonical("default") == "default"
    assert tuning.study_name(digits, "cnn") == tuning.study_name(digits, "default") == "digit-recognizer:default"
    assert tuning.recipes_to_tune(digits, ["cnn", "default"]) == (["cnn"], [])
    url = str(tmp_path / "studies.journal")
    storage, _ = storages.open_storage(url, digits.name)
    study = tuning.open_study(digits, "cnn", storage)
    study.add_trial(optuna.trial.create_trial(value=0.99, user_attrs={"params": {"epochs": 3}}))
    for name in ("cnn", "default"):
        params, source = tuning.best_params(digits, name, url)
        assert params == {"epochs": 3} and source["study"] == "digit-recognizer:default"


def test_recipe_all_tunes_every_recipe_that_has_a_search_space(data_dir, kit_home):
    result = run_script("tune.py", "titanic", "--recipe", "all", "--trials", "1", "--folds", "3")
    assert result.returncode == 0, result.stderr
    tunable = [name for name, recipe in TITANIC.recipes.items() if recipe.space is not None]
    assert tunable[:2] == ["logreg", "lgbm"]  # a recipe a user adds is tuned too (README: "Your own recipe")
    assert all(f"tuning {name} ({i} of {len(tunable)})" in result.stdout for i, name in enumerate(tunable, 1))
    mixed = run_script("tune.py", "titanic", "--recipe", "all,lgbm", "--trials", "1")
    assert mixed.returncode == 2 and "give it alone, or name the recipes" in mixed.stderr


def test_recipe_without_search_space_is_refused():
    with pytest.raises(UsageError, match="no search space; tunable recipes: logreg, lgbm"):
        tuning.tune(TITANIC, "default", n_trials=1)


def test_unreachable_storage_is_one_line(data_dir):
    port = 1  # nothing listens there
    result = run_script("tune.py", "titanic", "--recipe", "lgbm", "--trials", "1", "--storage",
                        f"postgresql://nobody:secret@127.0.0.1:{port}/nodb")
    assert result.returncode == 6, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: cannot reach tuning storage postgresql://nobody:***@127.0.0.1:1/nodb")
    assert "secret" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(("url", "error", "message"), [
    ("postgres://u:secret@localhost/db", UsageError,
     r"tuning storage postgres://u:\*\*\*@localhost/db: write postgresql:// - SQLAlchemy does not accept "
     "postgres://$"),
    ("mysql://u@localhost/db", TuningError,
     r"no database driver for mysql://u@localhost/db: install the Python driver SQLAlchemy uses for mysql:// \(e.g."),
])
def test_a_storage_url_sqlalchemy_cannot_use_says_what_to_write_or_install(url, error, message):
    """Hosting services hand out postgres:// URLs, which SQLAlchemy refuses with "Can't load plugin"; a dialect
    whose driver is missing must not be told to install the PostgreSQL one."""
    with pytest.raises(error, match=f"^{message}"):
        storages.open_storage(url, TITANIC.name)


def test_an_sqlite_file_gets_its_folder_made_as_a_journal_does(tmp_path):
    url = f"sqlite:///{tmp_path}/studies/2026/t.db"  # SQLite itself: "unable to open database file"
    storage, _ = storages.open_storage(url, TITANIC.name)
    optuna.create_study(study_name="titanic:lgbm", storage=storage, direction="maximize")
    assert (tmp_path / "studies" / "2026" / "t.db").is_file()


def test_study_created_for_the_other_direction_is_refused(storage_url):
    storage, _ = storages.open_storage(storage_url, TITANIC.name)
    optuna.create_study(study_name="titanic:lgbm", storage=storage, direction="minimize")
    with pytest.raises(TuningError, match="created to minimize, but accuracy must maximize"):
        tuning.tune(TITANIC, "lgbm", n_trials=1, storage_url=storage_url)


def test_params_best_without_a_study_is_one_line(data_dir):
    result = run_script("train.py", "titanic", "--recipe", "lgbm", "--params", "best")
    assert result.returncode == 2
    assert "study 'titanic:lgbm' is not there" in result.stderr.strip().splitlines()[-1]


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # the PostgreSQL storage's heartbeat, asked outside optimize
def test_params_best_of_a_study_stopped_before_any_trial_finished_is_one_line(data_dir, storage_url):
    """Ctrl-C during the first trial leaves a study whose only trial never finished: --params best says so."""
    storage, _ = storages.open_storage(storage_url, TITANIC.name)
    study = optuna.create_study(study_name="titanic:lgbm", storage=storage, direction="maximize")
    study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)
    with pytest.raises(UsageError, match=r"^study 'titanic:lgbm' has no finished trial yet$"):
        tuning.best_params(TITANIC, "lgbm", storage_url)


@pytest.mark.parametrize("url, file", [
    ("runs/titanic/optuna.journal", "runs/titanic/optuna.journal"), ("journal:///tmp/x.log", "/tmp/x.log"),
    ("~/studies/t.journal", str(Path.home() / "studies" / "t.journal")),
    ("sqlite:///typo.db", "typo.db"), ("sqlite:////tmp/t.db?timeout=5", "/tmp/t.db"),
    ("sqlite+pysqlite:///a.db", "a.db"), ("sqlite:///:memory:", None), ("postgresql://u@host/db", None)])
def test_storage_file_names_the_file_behind_a_url(url, file):
    assert storages.storage_file(url) == (None if file is None else Path(file))


def test_readers_never_create_the_storage_a_typo_names(data_dir, tmp_path, kit_home):
    """--params best and the report read studies: a wrong --storage is one usage line, and no empty file appears."""
    typo_db, typo_journal = tmp_path / "typo.db", tmp_path / "typo" / "optuna.journal"
    result = run_script("train.py", "titanic", "--recipe", "lgbm", "--params", "best", "--storage",
                        f"sqlite:///{typo_db}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: no tuning storage at {typo_db}; study "
                                                             "'titanic:lgbm' is not there: run scripts/tune.py")
    result = run_script("leaderboard.py", "--storage", str(typo_journal))
    assert result.returncode == 2 and "no tuning storage at" in result.stderr.strip().splitlines()[-1]
    default = run_script("train.py", "titanic", "--recipe", "lgbm", "--params", "best")
    assert default.returncode == 2 and "optuna.journal; study 'titanic:lgbm' is not there" in default.stderr
    assert not typo_db.exists() and not typo_journal.parent.exists()
    assert not list(kit_home.rglob("optuna.journal"))


def test_params_from_a_json_file(data_dir, tmp_path, kit_home):
    path = tmp_path / "p.json"
    path.write_text('{"params": {"C": 0.05}}')
    result = run_script("train.py", "titanic", "--recipe", "logreg", "--params", str(path), "--folds", "3",
                        "--quiet")
    assert result.returncode == 0, result.stderr
    record = json.loads(next((kit_home / "runs" / "titanic").glob("*/run.json")).read_text())
    assert record["params"] == {"C": 0.05}
    assert record["params_source"]["kind"] == "file" and record["params_source"]["sha256"]


@pytest.mark.parametrize(("content", "message"), [
    (None, "cannot read params file .*: No such file or directory"),
    ("folder", "cannot read params file .*: Is a directory"),
    ('{"C": ', "is not valid JSON"),
    ("[0.05]", "must hold a JSON object of params"),
    ('{"params": [1]}', "must hold a JSON object of params"),
], ids=["missing", "a-folder", "broken", "a-list", "params-not-an-object"])
def test_a_bad_params_file_is_one_usage_line(tmp_path, content, message):
    path = tmp_path / "p.json"
    if content == "folder":
        path.mkdir()
    elif content is not None:
        path.write_text(content)
    with pytest.raises(UsageError, match=message):
        params_from_file(str(path))


def test_params_written_inline(data_dir, kit_home):
    result = run_script("train.py", "titanic", "--recipe", "logreg", "--params", '{"C": 0.05}', "--folds", "3",
                        "--quiet")
    assert result.returncode == 0, result.stderr
    record = json.loads(next((kit_home / "runs" / "titanic").glob("*/run.json")).read_text())
    assert record["params"] == {"C": 0.05} and record["params_source"]["kind"] == "inline"
    bad = run_script("train.py", "titanic", "--recipe", "logreg", "--params", '{"C": 0.05')
    assert bad.returncode == 2 and "not valid JSON" in bad.stderr.strip().splitlines()[-1]
    assert "Traceback" not in bad.stderr
    listed = run_script("train.py", "titanic", "--recipe", "logreg", "--params", "[0.05]")
    assert listed.returncode == 2 and "must be a JSON object of params" in listed.stderr.strip().splitlines()[-1]


def test_postgres_heartbeat_fails_and_retries_a_trial_of_a_worker_on_another_machine(data_dir, postgres_url,
                                                                                     kit_home, monkeypatch):
    """A dead worker on another host cannot be detected by pid: Optuna's heartbeat must catch it."""
    victim = kill_tuning_mid_trial(postgres_url, {"KIT_HOME": str(kit_home), "KIT_HEARTBEAT_SECONDS": "1"})
    monkeypatch.setenv("KIT_HEARTBEAT_SECONDS", "1")
    storage, _ = storages.open_storage(postgres_url, TITANIC.name)
    storage.set_trial_user_attr(storage.get_trial_id_from_study_id_trial_number(
        storage.get_study_id_from_name("titanic:lgbm"), victim.number), "host", "another-machine")
    time.sleep(4)  # past the grace period (3 heartbeats)
    before = optuna.load_study(study_name="titanic:lgbm", storage=storage)
    study = tuning.tune(TITANIC, "lgbm", n_trials=len(finished(before)) + 2, storage_url=postgres_url)
    assert study.trials[victim.number].state == TrialState.FAIL
    assert [t.number for t in study.trials if t.system_attrs.get("failed_trial") == victim.number]


def test_params_best_for_a_stack_takes_each_tuned_members_best(data_dir):
    HP = competitions.get("house-prices")
    with pytest.raises(UsageError, match="no member of stack 'fast' has been tuned"):
        tuning.best_params(HP, "fast")
    study = tuning.tune(HP, "ridge", n_trials=3, n_folds=3)
    params, source = tuning.best_params(HP, "fast")
    assert params["members"]["ridge"] == study.best_trial.user_attrs["params"]
    assert params["members"]["lasso"] == HP.recipes["lasso"].params
    assert source["members"]["ridge"]["trial"] == study.best_trial.number
    assert source["members"]["lasso"] == {"kind": "recipe"}
    record, _ = runner.train(HP, "fast", n_folds=3, params=params, params_source=source, progress=False)
    assert record["cv"]["members"]["ridge"]["mean"] == pytest.approx(study.best_value)


def test_params_best_for_a_stack_keeps_the_stacks_own_changes_to_its_members(data_dir):
    """House Prices' default runs its linear members with the partial sales kept; tuning ridge alone (which drops
    them) must change only what the trial tuned."""
    HP = competitions.get("house-prices")
    study = tuning.tune(HP, "ridge", n_trials=2, n_folds=3)
    params, source = tuning.best_params(HP, "default")
    assert params["members"]["ridge"]["alpha"] == study.best_trial.user_attrs["params"]["alpha"]
    assert params["members"]["ridge"]["drop_partial_sales"] is False
    assert params["members"]["svr"] == resolve(HP, "default")["members"]["svr"]
    assert params["members"]["svr"]["drop_partial_sales"] is False
    assert params["meta"] == resolve(HP, "default")["meta"]
    assert source["members"]["svr"] == {"kind": "recipe"}


def test_compare_scores_tuned_params_on_folds_they_were_not_tuned_on(data_dir):
    study = tuning.tune(TITANIC, "logreg", n_trials=6, n_folds=3)  # seeded: trial 5 beats the recipe's own params
    assert not study.best_trial.user_attrs.get(OWN_PARAMS), "this test needs a trial better than the recipe's own"
    result = run_script("compare.py", "titanic", "--recipes", "logreg", "--tuned", "--repeats", "1", "--folds", "3")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()[1:]
    assert lines[0].split()[0] == "logreg"
    assert lines[1].startswith(f"  logreg (tuned #{study.best_trial.number})")
    assert re.search(r"against logreg: gain [+-]\d\.\d{5} ± \d\.\d{5}; [\d.]+ rows flipped per repeat", lines[1])


def test_compare_scores_a_stack_with_its_tuned_members(data_dir):
    HP = competitions.get("house-prices")
    study = tuning.tune(HP, "lasso", n_trials=2, n_folds=3)  # seeded: trial 1 beats the recipe's own params
    assert not study.best_trial.user_attrs.get(OWN_PARAMS), "this test needs a trial better than the recipe's own"
    tuning.tune(HP, "ridge", n_trials=1, n_folds=3)  # only the recipe's own params: not a tuned member
    result = run_script("compare.py", "house-prices", "--recipes", "fast", "--tuned", "--repeats", "1", "--folds", "3")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()[1:]
    assert lines[1].startswith(f"  fast (tuned members lasso #{study.best_trial.number})")


def test_the_trials_a_runs_params_came_from_are_named_for_people():
    """compare.py's labels and the report's params column: a study's trial, or a stack's members that won theirs."""
    study = {"kind": "study", "trial": 6}
    own = {"kind": "study", "trial": 0, OWN_PARAMS: True}
    assert runs.trials_text(study) == "#6"
    assert runs.trials_text({"kind": "stack", "members": {"ridge": own, "lgbm": study, "gbr": {"kind": "recipe"}}}) \
        == "members lgbm #6"
    assert runs.trials_text({"kind": "stack", "members": {"ridge": own}}) == "members' own params"


def test_a_worker_that_fails_to_start_stops_the_started_ones_and_reports_its_own_error(data_dir, monkeypatch,
                                                                                       kit_home):
    """The start error must come through (not a join error from the workers never started), and no worker is left."""
    class FakeProcess:
        made: list["FakeProcess"] = []

        def __init__(self, target, args):
            self.pid, self.terminated, self.joined = None, False, False
            FakeProcess.made.append(self)

        def start(self):
            if len(FakeProcess.made) > 1 and self is FakeProcess.made[1]:
                raise RuntimeError("cannot start worker 1")
            self.pid = 12345

        def is_alive(self):
            return self.pid is not None and not self.terminated

        def terminate(self):
            self.terminated = True

        def join(self, timeout=None):
            assert self.pid is not None, "joined a worker that never started"
            self.joined = True

    class FakeContext:
        Process = FakeProcess

    monkeypatch.setattr(tuning_workers.multiprocessing, "get_context", lambda method: FakeContext())
    monkeypatch.setattr(tuning, "usable_cores", lambda: 8)  # three workers are allowed on any machine here
    with pytest.raises(RuntimeError, match="cannot start worker 1"):
        tuning.tune(TITANIC, "lgbm", n_trials=4, workers=3, n_folds=3)
    first, second, third = FakeProcess.made
    assert first.terminated and first.joined
    assert second.pid is None and third.pid is None and not third.joined


def test_more_local_workers_than_cores_is_a_usage_error_and_more_than_trials_are_not_started(data_dir, monkeypatch,
                                                                                              kit_home):
    monkeypatch.setattr(tuning, "usable_cores", lambda: 2)
    with pytest.raises(UsageError, match=r"--workers 3 is more than the 2 CPU cores this process may use; use at "
                       r"most 2"):
        tuning.tune(TITANIC, "logreg", n_trials=5, workers=3, n_folds=3)
    assert not (kit_home / "runs").exists()  # refused before the storage was opened
    study = tuning.tune(TITANIC, "logreg", n_trials=1, workers=2, n_folds=3)  # one trial: one worker, in process
    assert len(study.trials) == 1
