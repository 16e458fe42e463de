"""The submit loop through the real kaggle client against the fake Kaggle, and the CV leaderboard report,
including a headless Chromium that opens the HTML report from disk."""

import io
import json
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import zipfile

import pandas as pd
import pytest

import competitions
from common import data, kaggle_runs, runner
from common.io import FileLock
from common.metrics import ACCURACY, RMSLE
from common.runs import RunRecord, best_run, load_runs, update_record

from conftest import ROOT, env_for, run_script, sigint_as_from_a_terminal, skip_or_fail

TITANIC = competitions.get("titanic")


@pytest.fixture(scope="session")
def trained_home(shared_kaggle, tmp_path_factory):
    """Two Titanic runs, made once per test process in a home of their own (each test gets a copy: about 1.6 s
    less for each of the ~30 tests that start from them)."""
    home = tmp_path_factory.mktemp("trained") / "home"
    home.mkdir()
    with pytest.MonkeyPatch.context() as patch:  # made before any test's own fixtures: kit_home's settings here too
        patch.setenv("KIT_HOME", str(home))
        patch.setenv("KAGGLE_DATA_DIR", str(shared_kaggle))
        patch.setattr(data, "KAGGLE_INPUT", home.parent / "no-kaggle-input")
        runner.train(TITANIC, "fast", seed=0, n_folds=3, progress=False)
        runner.train(TITANIC, "rule", seed=0, n_folds=3, progress=False)
    return home


@pytest.fixture
def trained(trained_home, data_dir, kit_home):
    """The two Titanic runs in this test's home; returns them best first. A record names its folds file by its
    absolute path: the copies name this home's."""
    shutil.copytree(trained_home, kit_home, dirs_exist_ok=True)
    for record in kit_home.glob("runs/*/*/run.json"):
        record.write_text(record.read_text().replace(str(trained_home), str(kit_home)))
    return sorted(load_runs("titanic"), key=lambda r: r["cv"]["mean"], reverse=True)


def last_line(result) -> str:
    return result.stderr.strip().splitlines()[-1]


def test_dry_run_validates_the_best_run_and_sends_nothing(trained, fake_kaggle, kit_home, data_dir):
    result = run_script("submit.py", "titanic", "--dry-run", env=env_for(kit_home, fake_kaggle, data_dir))
    assert result.returncode == 0, result.stderr
    assert f"run {trained[0]['run_id']}" in result.stdout and "dry run: would submit" in result.stdout
    assert not fake_kaggle.calls("StartSubmissionUpload")


def test_commands_that_read_runs_import_no_model_library():
    """Every competition, the runner and the report load without scikit-learn, LightGBM or torch (a second or more to
    import: submit, report, prune and download would pay it for nothing); a recipe, once asked for, loads them."""
    code = """
import sys
import competitions
from common import report, runner, submission
comps = [competitions.get(name) for name in competitions.names()]
heavy = lambda: sorted(m for m in ("sklearn", "lightgbm", "torch", "scipy.stats") if m in sys.modules)
print(heavy())
print(comps[0].recipe("default").description[:20], heavy())
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    before, after = result.stdout.splitlines()
    assert before == "[]"
    assert "sklearn" in after and "lightgbm" in after


def test_best_run_follows_the_metric_direction():
    runs = [RunRecord(str(m), "", "toy", "x", {}, {"mean": m}) for m in (0.12, 0.11, 0.13)]
    assert best_run(runs, RMSLE).cv["mean"] == 0.11
    assert best_run(runs, ACCURACY).cv["mean"] == 0.13


def test_submit_waits_for_the_score_and_records_it_with_the_reference(trained, fake_kaggle, kit_home, data_dir):
    run = trained[1]
    result = run_script("submit.py", "titanic", "--run", run["run_id"], "--poll", "0.2",
                        env=env_for(kit_home, fake_kaggle, data_dir))
    assert result.returncode == 0, result.stderr
    assert "scored: public accuracy" in result.stdout
    record = json.loads((kit_home / "runs" / "titanic" / run["run_id"] / "run.json").read_text())
    [entry] = record["kaggle_submissions"]
    assert entry["ref"] == fake_kaggle.state.submissions[0]["ref"]
    assert entry["status"] == "COMPLETE" and entry["public_score"] is not None
    assert entry["message"].startswith(run["run_id"]) and "CV accuracy" in entry["message"]
    assert fake_kaggle.state.submissions[0]["description"] == entry["message"]

    report = run_script("leaderboard.py", env=env_for(kit_home))
    assert report.returncode == 0, report.stderr
    md = (kit_home / "reports" / "leaderboard.md").read_text()
    assert f"{entry['public_score']:.5f}" in md and "## titanic" in md
    page = (kit_home / "reports" / "leaderboard.html").read_text()
    assert page.count("data:image/png;base64,") >= 2  # fold spread + CV vs LB
    assert "http://" not in page and "https://" not in page  # self-contained


@pytest.mark.parametrize("name, recipes", [("titanic", ("rule", "logreg", "fast")),
                                           ("house-prices", ("ridge", "lasso", "fast"))])
def test_submit_says_how_far_the_file_is_from_the_best_on_kaggle(name, recipes, data_dir, kit_home):
    import numpy as np
    import pandas as pd

    comp = competitions.get(name)
    best, other, new = (runner.train(comp, recipe, n_folds=3, progress=False)[0] for recipe in recipes)
    scores = (0.5, 0.4) if comp.metric.greater_is_better else (0.5, 0.6)  # the first is the better on Kaggle
    for record, score in zip((best, other), scores, strict=True):
        folder = kit_home / "runs" / name / record.run_id
        update_record(folder, lambda r, s=score: {"kaggle_submissions": [{"ref": 1, "public_score": s}]})
    shown = run_script("submit.py", name, "--run", new.run_id, "--dry-run", env=env_for(kit_home, data_dir=data_dir))
    assert shown.returncode == 0, shown.stderr
    theirs, mine = (pd.read_csv(kit_home / "runs" / name / r.run_id / "submission.csv").iloc[:, 1].to_numpy()
                    for r in (best, new))
    changed = int((theirs != mine).sum()) if comp.submission.dtype == "int" else int((~np.isclose(theirs, mine)).sum())
    assert 0 < changed <= len(mine)
    said = (f"against run {best.run_id}, the best on Kaggle (public {comp.metric.name} 0.5, CV {best.cv_text()}), "
            f"{changed:,} of {len(mine):,} predictions differ")
    assert said in shown.stdout
    if comp.submission.dtype == "float":  # how far apart, in the metric's own terms
        assert f"({comp.metric.name} {comp.metric(theirs, mine):.5f} between the two files)" in shown.stdout


def test_a_score_is_set_beside_the_best_the_other_files_have_on_kaggle(trained, fake_kaggle, kit_home, data_dir):
    env = env_for(kit_home, fake_kaggle, data_dir)
    first, second = trained
    said = []
    for run in (first, second):
        result = run_script("submit.py", "titanic", "--run", run.run_id, "--poll", "0.2", env=env)
        assert result.returncode == 0, result.stderr
        said.append(result.stdout.splitlines()[-1])
    assert said[0].startswith("scored: public accuracy")  # nothing to set it beside yet
    scores = {r.run_id: r.leaderboard() for r in load_runs("titanic")}
    before, after = scores[first.run_id], scores[second.run_id]
    assert before != after  # the fake scores agreement with the sample submission: these two files differ there
    if after > before:
        assert said[1] == f"a new best on Kaggle: {after - before:.5f} better than run {first.run_id} ({before})"
    else:
        assert said[1] == (f"{before - after:.5f} short of your best on Kaggle, run {first.run_id} ({before}, CV "
                           f"{first.cv_text()})")


def test_a_zipped_upload_scores_like_the_plain_csv_and_leaves_the_run_untouched(trained, fake_kaggle, kit_home,
                                                                              data_dir):
    run = trained[0]
    folder = kit_home / "runs" / "titanic" / run["run_id"]
    before = sorted(p.name for p in folder.iterdir())
    env = env_for(kit_home, fake_kaggle, data_dir)
    dry = run_script("submit.py", "titanic", "--run", run["run_id"], "--zip", "always", "--dry-run", env=env)
    assert "would submit it zipped" in dry.stdout, dry.stderr
    for mode, again in (("always", ()), ("never", ("--again",))):
        result = run_script("submit.py", "titanic", "--run", run["run_id"], "--zip", mode, "--wait", "--poll", "0.2",
                            *again, env=env)
        assert result.returncode == 0, result.stderr
    zipped, plain = fake_kaggle.state.submissions
    assert zipped["error"] is None and zipped["score"] == plain["score"]
    assert list(fake_kaggle.state.upload_names.values()) == ["submission.zip", "submission.csv"]
    assert next(iter(fake_kaggle.state.uploads.values())).startswith(b"PK")
    assert sorted(p.name for p in folder.iterdir()) == before  # the zip was made elsewhere and removed
    record = json.loads((folder / "run.json").read_text())
    assert [e["uploaded"] for e in record["kaggle_submissions"]] == ["submission.zip", "submission.csv"]


def test_a_note_follows_the_runs_description_and_sync_still_finds_the_run(trained, fake_kaggle, kit_home,
                                                                            data_dir):
    run = trained[0]
    env = env_for(kit_home, fake_kaggle, data_dir)
    fake_kaggle.state.pending_polls = 0  # scored at once
    result = run_script("submit.py", "titanic", "--run", run["run_id"], "--note", "women and children first",
                        "--no-wait", env=env)
    assert result.returncode == 0, result.stderr
    assert "python scripts/leaderboard.py titanic --sync" in result.stdout.splitlines()[-1]  # where the score will be
    [sent] = fake_kaggle.state.submissions
    assert sent["description"].startswith(run["run_id"] + " ") and sent["description"].endswith(
        " - women and children first")
    assert run_script("leaderboard.py", "titanic", "--sync", env=env).returncode == 0
    [entry] = json.loads((kit_home / "runs" / "titanic" / run["run_id"] / "run.json").read_text())["kaggle_submissions"]
    assert entry["status"] == "COMPLETE" and entry["message"] == sent["description"]
    bad = run_script("submit.py", "titanic", "--note", "two\nlines", env=env)
    assert bad.returncode == 2 and "--note must be one line" in last_line(bad)
    assert len(fake_kaggle.state.submissions) == 1


def test_a_file_kaggle_already_has_is_sent_again_only_with_again(trained, fake_kaggle, kit_home, data_dir):
    """Kaggle scores the file, not the run: the same file again - from the same run, or from the same recipe and
    seed trained again - would spend one of the day's submissions on a score the user already has."""
    env = env_for(kit_home, fake_kaggle, data_dir)
    [first] = [r for r in trained if r.recipe == "fast"]
    [rule] = [r for r in trained if r.recipe == "rule"]
    assert run_script("submit.py", "titanic", "--run", first.run_id, "--poll", "0.2", env=env).returncode == 0
    [sent] = fake_kaggle.state.submissions
    [sent_on] = [e["submitted"] for e in RunRecord.read(first.path).kaggle_submissions]
    for extra in ((), ("--dry-run",), ("--no-wait",)):
        again = run_script("submit.py", "titanic", "--run", first.run_id, *extra, env=env)
        assert again.returncode == 2 and "Traceback" not in again.stderr
        assert last_line(again).startswith("error: this run's file was already submitted to Kaggle on 20")
        assert f"(ref {sent['ref']}, public accuracy {sent['score']})" in last_line(again)
        assert last_line(again).endswith("pass --again to send it anyway")
    retrained = run_script("train.py", "titanic", "--recipe", "fast", "--folds", "3", "--quiet", env=env)
    assert retrained.returncode == 0, retrained.stderr  # the same recipe and seed: the same file, and it says so
    [twin] = [r for r in load_runs("titanic") if r.run_id not in {t.run_id for t in trained}]
    assert twin.submission["sha256"] == first.submission["sha256"]
    assert retrained.stdout.splitlines()[-1] == (f"note: the same file (run {first.run_id}, same sha256) was already "
                                                 f"submitted to Kaggle on {sent_on} (ref {sent['ref']}, public "
                                                 f"accuracy {sent['score']})")
    other = run_script("submit.py", "titanic", "--run", twin.run_id, env=env)
    assert other.returncode == 2
    assert last_line(other).startswith(f"error: the same file (run {first.run_id}, same sha256) was already submitted")
    assert len(fake_kaggle.state.submissions) == 1 and len(fake_kaggle.calls("StartSubmissionUpload")) == 1
    forced = run_script("submit.py", "titanic", "--run", twin.run_id, "--again", "--poll", "0.2", env=env)
    assert forced.returncode == 0, forced.stderr
    assert len(fake_kaggle.state.submissions) == 2 and RunRecord.read(twin.path).kaggle_submissions
    # another run's file was never sent: no --again needed
    assert run_script("submit.py", "titanic", "--run", rule.run_id, "--no-wait", env=env).returncode == 0


def test_the_best_run_already_on_kaggle_names_the_best_one_that_is_not(trained, fake_kaggle, kit_home, data_dir):
    env = env_for(kit_home, fake_kaggle, data_dir)
    best, second = trained
    assert run_script("submit.py", "titanic", "--no-wait", env=env).returncode == 0  # the best by CV
    again = run_script("submit.py", "titanic", "--dry-run", env=env)
    assert again.returncode == 2 and last_line(again).startswith("error: this run's file was already submitted")
    assert last_line(again).endswith(f"the best run by CV whose file Kaggle does not have is {second.run_id} "
                                     f"({second.recipe}, CV {second.cv_text()}): --run {second.run_id}")
    named = run_script("submit.py", "titanic", "--run", best.run_id, "--dry-run", env=env)
    assert last_line(named).endswith("pass --again to send it anyway")  # the user chose it: no other run offered


def test_a_submit_authenticates_once_and_warns_once_about_a_readable_token(trained, fake_kaggle, kit_home,
                                                                              data_dir):
    """A submit lists, asks the limits and uploads: one client for all three (a token is checked online)."""
    env = env_for(kit_home, fake_kaggle, data_dir)
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY"):  # the credentials from a token file instead
        env.pop(name)
    token = kit_home / "kaggle-config" / "kaggle.json"
    token.write_text(json.dumps({"username": fake_kaggle.state.username, "key": fake_kaggle.state.key}))
    token.chmod(0o644)
    result = run_script("submit.py", "titanic", "--no-wait", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("chmod 600") == 1
    assert fake_kaggle.calls("GetSubmissionLimits")
    assert len(fake_kaggle.calls("ListSubmissions")) == 1  # one list serves the record check and the retry's floor


def test_a_submission_kaggle_has_but_the_record_lost_is_recorded_and_not_sent_twice(trained, fake_kaggle, kit_home,
                                                                                      data_dir):
    """A submit killed between Kaggle's answer and the record's update: Kaggle's list names the run."""
    env = env_for(kit_home, fake_kaggle, data_dir)
    run = trained[0]
    assert run_script("submit.py", "titanic", "--run", run.run_id, "--no-wait", env=env).returncode == 0
    [sent] = fake_kaggle.state.submissions
    update_record(run.path, lambda r: {"kaggle_submissions": []})  # as if killed before the record was written
    again = run_script("submit.py", "titanic", "--run", run.run_id, "--no-wait", env=env)
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert last_line(again).startswith("error: this run's file was already submitted to Kaggle")
    assert f"ref {sent['ref']}" in last_line(again)
    assert [e["ref"] for e in RunRecord.read(run.path).kaggle_submissions] == [sent["ref"]]
    assert len(fake_kaggle.calls("StartSubmissionUpload")) == 1
    forced = run_script("submit.py", "titanic", "--run", run.run_id, "--no-wait", "--again", env=env)
    assert forced.returncode == 0 and len(fake_kaggle.state.submissions) == 2


def test_a_record_that_cannot_be_written_once_kaggle_has_the_file_says_it_was_sent(trained, fake_kaggle, kit_home,
                                                                                   data_dir):
    """A full disk after the upload: the line says Kaggle has it, and the same command records it, sends nothing."""
    env = env_for(kit_home, fake_kaggle, data_dir)
    code = ("import errno, os, runpy, sys\n"
            "from common import kaggle_runs\n"
            "def full(folder, change):\n"
            "    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder / 'run.json'))\n"
            "kaggle_runs.update_record = full\n"
            "sys.argv = ['submit.py', 'titanic', '--no-wait']\n"
            "sys.path.insert(0, 'scripts')  # as python scripts/submit.py has it\n"
            "runpy.run_path('scripts/submit.py', run_name='__main__')\n")
    full = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=120)
    [sent] = fake_kaggle.state.submissions
    assert full.returncode == 7 and "Traceback" not in full.stderr, full.stderr
    assert last_line(full).startswith(f"error: Kaggle has the submission (ref {sent['ref']}), but its record was "
                                      f"not written: cannot use {trained[0].path / 'run.json'}: No space left")
    assert last_line(full).endswith("python scripts/leaderboard.py titanic --sync with its score")
    again = run_script("submit.py", "titanic", "--no-wait", env=env)
    assert again.returncode == 2 and last_line(again).startswith("error: this run's file was already submitted")
    assert [e["ref"] for e in RunRecord.read(trained[0].path).kaggle_submissions] == [sent["ref"]]
    assert len(fake_kaggle.state.submissions) == 1


def test_two_submits_at_once_send_the_file_once(trained, fake_kaggle, kit_home, data_dir, tmp_path):
    """Two terminals, one `make submit`: both would find the best run's file unsent and both send it (two of the
    day's submissions for one score); the second waits for the first, then finds its record."""
    env = env_for(kit_home, fake_kaggle, data_dir)
    lock = FileLock(kit_home / "runs" / "titanic" / ".submit.flock")
    assert lock.acquire()  # held here, so both start before either sends
    logs = [tmp_path / f"submit-{i}.err" for i in range(2)]
    procs = []
    for log in logs:
        with log.open("w") as err:
            procs.append(subprocess.Popen([sys.executable, str(ROOT / "scripts" / "submit.py"), "titanic",
                                           "--no-wait"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err))
    try:
        deadline = time.time() + 120
        while not all("is sending a file; waiting until it has" in log.read_text() for log in logs):
            assert time.time() < deadline and all(proc.poll() is None for proc in procs), [
                log.read_text() for log in logs]
            time.sleep(0.05)
    finally:
        lock.release()
    codes = sorted(proc.wait(timeout=120) for proc in procs)
    assert codes == [0, 2], [log.read_text() for log in logs]
    refused = next(log.read_text() for log in logs if "already submitted" in log.read_text())
    assert f"--run {trained[1].run_id}" in refused  # and the best run Kaggle does not have yet is named
    assert len(fake_kaggle.state.submissions) == 1


def test_auto_zips_only_files_over_the_threshold(tmp_path):
    small, large = tmp_path / "small.csv", tmp_path / "large.csv"
    small.write_text("Id,Visits\n" + "a,1\n" * 10)
    large.write_text("Id,Visits\n" + "abcdef012345,17\n" * (kaggle_runs.ZIP_ABOVE // 16 + 1))
    assert not kaggle_runs.zips(small) and kaggle_runs.zips(large)
    assert kaggle_runs.zips(small, "always") and not kaggle_runs.zips(large, "never")
    with kaggle_runs.upload_form(large) as upload:
        assert upload.suffix == ".zip" and upload.stat().st_size < large.stat().st_size / 4
        with zipfile.ZipFile(upload) as zf:
            assert zf.namelist() == ["large.csv"] and zf.read("large.csv") == large.read_bytes()
    assert not upload.exists()
    with kaggle_runs.upload_form(small) as upload:
        assert upload == small


def test_without_credentials_the_file_is_validated_and_the_command_fails_clearly(trained, fake_kaggle, kit_home,
                                                                                  data_dir):
    result = run_script("submit.py", "titanic", env=env_for(kit_home, None, data_dir))
    assert result.returncode == 4
    assert "is valid" in result.stdout
    assert last_line(result).startswith("error: no Kaggle credentials") and "kaggle.json" in last_line(result)
    assert not fake_kaggle.calls("StartSubmissionUpload")


def test_rules_not_accepted_names_the_rules_page(trained, fake_kaggle, kit_home, data_dir):
    fake_kaggle.fail("StartSubmissionUpload", 403)
    result = run_script("submit.py", "titanic", env=env_for(kit_home, fake_kaggle, data_dir))
    assert result.returncode == 4 and "https://www.kaggle.com/c/titanic/rules" in last_line(result)


def test_daily_limit_is_an_error_not_a_silent_success(trained, fake_kaggle, kit_home, data_dir):
    fake_kaggle.state.daily_limit = 0
    result = run_script("submit.py", "titanic", env=env_for(kit_home, fake_kaggle, data_dir))
    assert result.returncode == 4
    assert "daily submission limit reached" in last_line(result)
    assert all(not r["kaggle_submissions"] for r in load_runs("titanic"))


def test_no_submissions_left_today_is_refused_before_the_upload(trained, fake_kaggle, kit_home, data_dir):
    """Kaggle says how many submissions it still allows today: none left costs no upload (Web Traffic's file is a
    few hundred MB)."""
    fake_kaggle.state.daily_limit = 2
    env = env_for(kit_home, fake_kaggle, data_dir)
    first = run_script("submit.py", "titanic", "--run", trained[0].run_id, "--no-wait", env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[-2] == "1 more submission to titanic allowed today (until 00:00 UTC)"
    assert run_script("submit.py", "titanic", "--run", trained[1].run_id, "--no-wait", env=env).returncode == 0
    retrained = runner.train(TITANIC, "logreg", n_folds=3, progress=False)[0]
    third = run_script("submit.py", "titanic", "--run", retrained.run_id, env=env)
    assert third.returncode == 4 and "Traceback" not in third.stderr
    assert re.fullmatch(r"error: no submissions to titanic left today \(2 made since 00:00 UTC\); Kaggle allows more "
                        r"at 00:00 UTC, in \d+ h \d+ min - nothing was sent", last_line(third))
    assert len(fake_kaggle.calls("StartSubmissionUpload")) == 2  # no third upload
    assert not RunRecord.read(retrained.path).kaggle_submissions


def test_edited_submission_is_refused(trained, fake_kaggle, kit_home, data_dir):
    path = kit_home / "runs" / "titanic" / trained[0]["run_id"] / "submission.csv"
    frame = pd.read_csv(path)
    frame.loc[0, "Survived"] = 1 - frame.loc[0, "Survived"]
    frame.to_csv(path, index=False)
    result = run_script("submit.py", "titanic", env=env_for(kit_home, fake_kaggle, data_dir))
    assert result.returncode == 5 and "edited after the run validated it" in last_line(result)
    assert not fake_kaggle.calls("StartSubmissionUpload")


def test_a_missing_submission_file_is_refused_before_anything_is_sent(trained, fake_kaggle, kit_home, data_dir):
    (kit_home / "runs" / "titanic" / trained[0]["run_id"] / "submission.csv").unlink()
    result = run_script("submit.py", "titanic", env=env_for(kit_home, fake_kaggle, data_dir))
    assert result.returncode == 5 and last_line(result).endswith("submission.csv is missing; the run cannot be "
                                                                 "submitted")
    assert not fake_kaggle.calls("StartSubmissionUpload")


def test_a_submission_kaggle_rejects_while_waiting_is_an_error_kept_in_the_record(trained, fake_kaggle, kit_home,
                                                                                   data_dir):
    """Kaggle's own scoring can fail a file the toolkit validated (a changed evaluation, a server fault): --wait
    says so with Kaggle's reason, and the record keeps the rejected submission."""
    fake_kaggle.state.check_submission = lambda slug, blob: ("Evaluation Exception: scoring failed", None)
    run = trained[0]
    result = run_script("submit.py", "titanic", "--wait", "--poll", "0.2", env=env_for(kit_home, fake_kaggle, data_dir))
    ref = fake_kaggle.state.submissions[0]["ref"]
    assert result.returncode == 5
    assert last_line(result) == f"error: Kaggle rejected submission {ref}: Evaluation Exception: scoring failed"
    [entry] = RunRecord.read(run.path).kaggle_submissions
    assert entry["ref"] == ref and entry["status"] == "ERROR" and entry["error"].startswith("Evaluation Exception")
    # a file Kaggle rejected is not one it has: sending it again (after a fault on Kaggle's side) needs no --again
    del fake_kaggle.state.check_submission
    retry = run_script("submit.py", "titanic", "--poll", "0.2", env=env_for(kit_home, fake_kaggle, data_dir))
    assert retry.returncode == 0, retry.stderr
    assert [e["status"] for e in RunRecord.read(run.path).kaggle_submissions] == ["ERROR", "COMPLETE"]


def test_waiting_past_the_timeout_keeps_the_submission_and_says_how_to_get_the_score(trained, fake_kaggle, kit_home,
                                                                                    data_dir):
    fake_kaggle.state.pending_polls = 10 ** 6  # Kaggle is slow today
    run = trained[0]
    result = run_script("submit.py", "titanic", "--wait", "--timeout", "1", "--poll", "0.2",
                        env=env_for(kit_home, fake_kaggle, data_dir))
    ref = fake_kaggle.state.submissions[0]["ref"]
    assert result.returncode == 4
    assert last_line(result) == (f"error: submission {ref} not scored after 1s; check later with python "
                                 "scripts/leaderboard.py titanic --sync")
    [entry] = RunRecord.read(run.path).kaggle_submissions  # nothing lost: --sync fills the score in later
    assert entry["ref"] == ref and entry["public_score"] is None


def test_ctrl_c_while_waiting_keeps_the_submission_and_says_how_to_get_the_score(trained, fake_kaggle, kit_home,
                                                                                data_dir):
    """The wait is the only part a user is likely to interrupt: the file is on Kaggle by then, so the line says
    that and where the score will come from, not the trainer's "nothing half-written was kept"."""
    fake_kaggle.state.pending_polls = 10 ** 6
    run = trained[0]
    with sigint_as_from_a_terminal():
        proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "submit.py"), "titanic", "--poll", "0.2"],
                                env=env_for(kit_home, fake_kaggle, data_dir), cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not fake_kaggle.state.submissions and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    time.sleep(0.5)  # polling now
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:  # it did not stop: leave no poller behind
            proc.kill()
    ref = fake_kaggle.state.submissions[0]["ref"]
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == (f"stopped waiting: submission {ref} is recorded in run {run.run_id}; "
                                            "its score, once Kaggle has it: python scripts/leaderboard.py titanic "
                                            "--sync")
    assert "Traceback" not in err and f"submitted as CSV: Kaggle ref {ref}" in out
    [entry] = RunRecord.read(run.path).kaggle_submissions
    assert entry["ref"] == ref and entry["public_score"] is None


def test_lost_server_response_is_retried_without_a_duplicate(trained, fake_kaggle, kit_home, data_dir):
    fake_kaggle.state.lose_create_responses = 1  # Kaggle creates it but the answer is a 500
    result = run_script("submit.py", "titanic", "--poll", "0.2", env=env_for(kit_home, fake_kaggle, data_dir))
    assert result.returncode == 0, result.stderr
    assert len(fake_kaggle.state.submissions) == 1
    assert len(load_runs("titanic")[0]["kaggle_submissions"] + load_runs("titanic")[1]["kaggle_submissions"]) == 1


def test_a_failed_upload_of_a_file_sent_before_is_retried_not_taken_for_the_earlier_one(trained, fake_kaggle,
                                                                                       kit_home, data_dir):
    env = env_for(kit_home, fake_kaggle, data_dir)
    run = trained[0]
    assert run_script("submit.py", "titanic", "--run", run.run_id, "--no-wait", env=env).returncode == 0
    fake_kaggle.fail("CreateSubmission", 500, times=1)  # the upload fails before Kaggle makes the submission
    result = run_script("submit.py", "titanic", "--run", run.run_id, "--again", "--no-wait", env=env)
    assert result.returncode == 0, result.stderr
    first, second = fake_kaggle.state.submissions  # retried: the same message is on Kaggle, but from the first
    assert first["description"] == second["description"]
    entries = RunRecord.read(run.path).kaggle_submissions
    assert [e["ref"] for e in entries] == [first["ref"], second["ref"]]


def test_the_wait_for_a_score_says_each_state_once_not_every_poll(trained, fake_kaggle, kit_home, data_dir):
    fake_kaggle.state.pending_polls = 5
    result = run_script("submit.py", "titanic", "--poll", "0.1", env=env_for(kit_home, fake_kaggle, data_dir))
    assert result.returncode == 0, result.stderr
    waits = [line for line in result.stderr.splitlines() if re.search(r"submission \d+: PENDING after", line)]
    assert len(waits) == 1 and "polling every 0.1s, at most 900s" in waits[0]
    assert "scored: public accuracy" in result.stdout


def test_persistent_server_errors_fail_clearly_and_record_nothing(trained, fake_kaggle, kit_home, data_dir):
    fake_kaggle.fail("CreateSubmission", 500)
    result = run_script("submit.py", "titanic", env=env_for(kit_home, fake_kaggle, data_dir))
    assert result.returncode == 4 and "kept failing after 3 attempts" in last_line(result)
    assert not fake_kaggle.state.submissions
    assert all(not r["kaggle_submissions"] for r in load_runs("titanic"))


def test_sync_fills_in_scores_of_earlier_submissions(trained, fake_kaggle, kit_home, data_dir):
    assert run_script("submit.py", "titanic", "--no-wait", env=env_for(kit_home, fake_kaggle, data_dir)).returncode == 0
    pending = [s for r in load_runs("titanic") for s in r["kaggle_submissions"]]
    assert pending[0]["public_score"] is None
    fake_kaggle.state.pending_polls = 0  # meanwhile Kaggle has scored it
    result = run_script("leaderboard.py", "titanic", "--sync", env=env_for(kit_home, fake_kaggle))
    assert result.returncode == 0, result.stderr
    [run] = [r for r in load_runs("titanic") if r.kaggle_submissions]
    [entry] = run.kaggle_submissions
    assert entry["public_score"] is not None and entry["status"] == "COMPLETE"
    assert "LB " in result.stdout
    assert (f"  newly scored: run {run.run_id} ({run.recipe}): public accuracy {entry['public_score']}, private "
            f"{entry['private_score']} (CV {run.cv_text()})") in result.stdout.splitlines()
    again = run_script("leaderboard.py", "titanic", "--sync", env=env_for(kit_home, fake_kaggle))
    assert again.returncode == 0 and "newly scored" not in again.stdout  # said once
    other = trained[1]
    assert run_script("submit.py", "titanic", "--run", other.run_id, "--no-wait",
                      env=env_for(kit_home, fake_kaggle, data_dir)).returncode == 0
    fake_kaggle.state.submissions[-1]["error"] = "Submission must have 418 rows"  # Kaggle's verdict, given later
    result = run_script("leaderboard.py", "titanic", "--sync", env=env_for(kit_home, fake_kaggle))
    assert (f"  newly scored: run {other.run_id} ({other.recipe}): rejected by Kaggle: Submission must have 418 "
            "rows") in result.stdout.splitlines()
    assert f"{other.run_id}  LB rejected" in result.stdout


def test_sync_reads_back_pages_until_it_finds_every_recorded_submission(trained, fake_kaggle, kit_home, data_dir):
    env = env_for(kit_home, fake_kaggle, data_dir)
    assert run_script("submit.py", "titanic", "--no-wait", env=env).returncode == 0
    for i in range(7):  # then submissions made elsewhere (a notebook, the website): the run's is pages back now
        fake_kaggle.state.submissions.append({"slug": "titanic", "ref": 5000 + i, "description": f"notebook {i}",
                                              "error": None, "score": 0.7, "polls": 0, "date": "2026-11-23T12:00:00Z"})
    fake_kaggle.state.pending_polls, fake_kaggle.state.max_page_size = 0, 3
    result = run_script("leaderboard.py", "titanic", "--sync", env=env)
    assert result.returncode == 0, result.stderr
    synced = [s for r in load_runs("titanic") for s in r["kaggle_submissions"]]
    assert len(synced) == 1 and synced[0]["status"] == "COMPLETE" and synced[0]["public_score"] is not None
    pages = [body.get("pageToken", "") for method, body in fake_kaggle.state.calls if method == "ListSubmissions"]
    assert pages[-3:] == ["", "3", "6"]  # three pages of 3: the run's was the 8th newest, and no page after it


def test_sync_leaves_out_competitions_never_submitted_and_writes_the_report_after_a_failure(
        trained, fake_kaggle, kit_home, data_dir):
    runner.train(competitions.get("house-prices"), "fast", seed=0, n_folds=3, progress=False)  # never submitted
    env = env_for(kit_home, fake_kaggle, data_dir)
    assert run_script("submit.py", "titanic", "--no-wait", env=env).returncode == 0
    fake_kaggle.state.calls.clear()
    result = run_script("leaderboard.py", "--sync", env=env)
    assert result.returncode == 0, result.stderr
    assert "not synced (no submission recorded; name one to sync it anyway): house-prices" in result.stdout
    assert {body["competitionName"] for _, body in fake_kaggle.state.calls} == {"titanic"}
    report = kit_home / "reports" / "leaderboard.html"
    report.unlink()
    fake_kaggle.fail("ListSubmissions", 403)  # e.g. a competition named whose rules were never accepted
    result = run_script("leaderboard.py", "house-prices", "--sync", env=env)
    assert result.returncode == 4 and "rules" in last_line(result)
    assert report.is_file()  # the report is still written, with the scores synced before


def test_the_list_is_read_no_further_back_than_a_wanted_submission_could_be(fake_kaggle, kit_home):
    for ref in (100, 101, 102, 103, 105, 106, 107, 108, 109):  # 104: not this account's, never listed
        fake_kaggle.state.submissions.append({"slug": "titanic", "ref": ref, "description": f"file {ref}",
                                              "error": None, "score": 0.7, "polls": 0, "date": "2026-11-23T12:00:00Z"})
    fake_kaggle.state.max_page_size = 3
    code = ("from common import kaggle_api\n"
            "print(sorted(s['ref'] for s in kaggle_api.list_submissions('titanic', refs={104, 105})))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                            env=env_for(kit_home, fake_kaggle), timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[103, 105, 106, 107, 108, 109]"  # two pages: past 104's place, it is not there
    assert [body.get("pageToken", "") for _, body in fake_kaggle.state.calls] == ["", "3"]


def test_a_wrong_file_gets_kaggles_error_description(fake_kaggle, kit_home, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("PassengerId,Survived\n892,0\n")
    code = ("import sys, time\nfrom pathlib import Path\nfrom common import kaggle_api\n"
            "ref = kaggle_api.submit('titanic', Path(sys.argv[1]), 'bad file')\n"
            "for _ in range(5):\n    s = [x for x in kaggle_api.list_submissions('titanic') if x['ref'] == ref][0]\n"
            "    if s['status'] != 'PENDING': break\nprint(s['status'], '|', s['error'])\n")
    result = subprocess.run([sys.executable, "-c", code, str(bad)], capture_output=True, text=True,
                            env=env_for(kit_home, fake_kaggle), timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ERROR | Submission must have 418 rows, got 1"


def test_report_skips_a_corrupt_run_json_and_still_writes(trained, kit_home):
    broken = kit_home / "runs" / "titanic" / "20000101-000000-fast-broken"
    broken.mkdir()
    (broken / "run.json").write_text("{ not json")
    result = run_script("leaderboard.py", env=env_for(kit_home))
    assert result.returncode == 0, result.stderr
    assert "skipping" in result.stderr and "20000101-000000-fast-broken" in result.stderr
    assert (kit_home / "reports" / "leaderboard.html").is_file()


def test_the_tables_fold_away_low_runs_never_scored_on_kaggle(trained, kit_home, monkeypatch):
    from common import report

    for seed in (1, 2):
        runner.train(TITANIC, "fast", seed=seed, n_folds=3, progress=False)
    best, *others = sorted(load_runs("titanic"), key=lambda r: r.cv["mean"], reverse=True)
    scored = others[-1]  # the lowest CV, but scored on Kaggle: CV beside LB is what the table is for
    update_record(scored.path, lambda r: {"kaggle_submissions": [{"ref": 1, "public_score": 0.77}]})
    monkeypatch.setattr(report, "SHOWN_RUNS", 1)
    pending = others[-2]  # sent, but not scored yet (submit.py --no-wait): shown too, with what to do
    update_record(pending.path, lambda r: {"kaggle_submissions": [{"ref": 2, "status": "PENDING"}]})
    _, page, sections = report.write()
    table = report.terminal(sections, limit=1)  # the terminal's table keeps the same runs in view
    assert best.run_id in table and f"{scored.run_id}  LB 0.77000" in table and others[0].run_id not in table
    assert f"{pending.run_id}  LB pending (--sync)" in table
    assert "... 1 more run with a lower CV, in the report\n  next: " in table
    shown, folded = page.read_text().split("<details>")
    assert best.run_id in shown and scored.run_id in shown and "0.77000" in shown
    assert "<td>pending (--sync)</td>" in shown and "1 more run (lower CV, not sent to Kaggle)" in folded
    assert others[0].run_id in folded.split("</details>")[0]
    md = (kit_home / "reports" / "leaderboard.md").read_text()
    assert all(r.run_id in md for r in [best, *others])
    # the code column: the commit, + and the start of code.patch's sha256 for uncommitted changes
    commit, patch = best.environment["git_commit"], best.environment.get("code_patch", "")
    assert md.splitlines()[4].endswith("| code |")
    assert f"| {commit[:7]}{'+' + patch[:4] if commit.endswith('-dirty') else ''} |" in md



def test_the_report_names_the_run_submit_would_send(trained, kit_home):
    """The table ranks every run by its plain CV mean; submit.py compares runs on the same folds and skips files
    Kaggle has. The report says which run that is, and the command, so rank 1 is not taken for it."""
    from common import report
    from common.kaggle_runs import pick_run

    best, second = trained
    quick, _ = runner.train(TITANIC, "fast", seed=0, n_folds=3, progress=False, folds_scored=1)
    assert pick_run(TITANIC).run_id == best["run_id"]
    _, _, sections = report.write()
    assert f"  next: python scripts/submit.py titanic  # {best['recipe']} run {best['run_id']}, CV " in (
        report.terminal(sections))
    update_record(best.path, lambda r: {"kaggle_submissions": [{"ref": 1, "public_score": 0.77}]})
    _, page, sections = report.write()
    unsent = report.terminal(sections).splitlines()[-1]
    other = next(r for r in (second, quick) if r.run_id in unsent)
    assert unsent.startswith(f"  next: python scripts/submit.py titanic --run {other.run_id}  # ")
    assert f"(the best, {best['run_id']}, is on Kaggle)" in unsent
    md = (kit_home / "reports" / "leaderboard.md").read_text()
    assert f"Next to submit: `python scripts/submit.py titanic --run {other.run_id}` - " in md
    assert f"<p class='next'>Next to submit: <code>python scripts/submit.py titanic --run {other.run_id}</code>" in (
        page.read_text())
    for run in (second, quick):
        update_record(run.path, lambda r: {"kaggle_submissions": [{"ref": 2, "status": "PENDING"}]})
    assert report.terminal(report.collect()).endswith(
        "  next to submit: none, every run's file is on Kaggle already")

def test_report_with_no_runs_is_friendly(kit_home):
    result = run_script("leaderboard.py", env=env_for(kit_home))
    assert result.returncode == 0 and "no runs yet" in result.stdout
    assert "No runs yet" in (kit_home / "reports" / "leaderboard.md").read_text()


def test_report_covers_every_competition_and_each_metric_direction(data_dir, kit_home):
    runner.train(competitions.get("house-prices"), "ridge", n_folds=3, progress=False)
    runner.train(competitions.get("house-prices"), "lasso", n_folds=3, progress=False)
    runner.train(TITANIC, "fast", n_folds=3, progress=False)
    from common import report

    sections = {s.name: s for s in report.collect()}
    assert set(sections) == {"house-prices", "titanic"}
    hp = [r["cv"]["mean"] for r in sections["house-prices"].runs]
    assert hp == sorted(hp)  # RMSLE: lower first, shown as is (no sign flip)
    assert "lower is better" in report.markdown(list(sections.values()))
    # one competition named: the table here shows it alone, the report files keep every competition
    named = run_script("leaderboard.py", "titanic", env=env_for(kit_home, data_dir=data_dir))
    assert named.returncode == 0, named.stderr
    assert "titanic (accuracy" in named.stdout and "house-prices" not in named.stdout
    md = (kit_home / "reports" / "leaderboard.md").read_text()
    assert "## titanic" in md and "## house-prices" in md
    none_yet = run_script("leaderboard.py", "digit-recognizer", env=env_for(kit_home, data_dir=data_dir))
    assert none_yet.returncode == 0 and "no runs of digit-recognizer yet" in none_yet.stdout
    assert "## house-prices" in (kit_home / "reports" / "leaderboard.md").read_text()


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]


def test_html_report_renders_in_headless_chromium(trained, kit_home, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if chromium is None:
        skip_or_fail("chromium is not installed (apt-get install chromium)")
    from common import drift, ensemble_runs, report

    ensemble, _, _ = ensemble_runs.build(TITANIC)
    drift.check(TITANIC)
    _, page, _ = report.write()
    flags = [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([chromium, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120)
    assert dom.returncode == 0, dom.stderr[-1000:]
    assert dom.stdout.count("<tr>") >= 6  # header + two runs + the ensemble; the ensembles table
    assert "fast" in dom.stdout and "rule" in dom.stdout
    # the new sections: the ensemble with its members, the drift check, what the best run relied on
    ensembles = dom.stdout.split("class=\"ensembles\"")[1].split("</table>")[0]
    assert ensemble.run_id in ensembles and all(run_id in ensembles for run_id in ensemble.ensemble["weights"])
    assert "Adversarial ROC AUC" in dom.stdout and "Drifting features (adversarial validation)" in dom.stdout
    assert "Feature importance of the best run that has it" in dom.stdout
    shot = tmp_path / "report.png"
    subprocess.run([chromium, *flags, f"--screenshot={shot}", "--window-size=1200,1600", page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[0] >= 1000 and pixels.shape[1] >= 1000
    rgb = pixels[..., :3]
    non_white = (rgb < 0.9).any(axis=-1).mean()
    assert non_white > 0.005, "the screenshot is (almost) blank"
    coloured = (rgb.max(axis=-1) - rgb.min(axis=-1) > 0.3).sum()
    assert coloured > 20, "no coloured pixels: the embedded matplotlib plot did not render"


def test_a_competitions_pictures_are_drawn_again_only_when_what_they_show_changes(trained, kit_home, tmp_path,
                                                                                 monkeypatch):
    """Web Traffic's pictures read the whole train file again (11 s at full size, every report and every sync):
    the report keeps each competition's pictures of its best run and draws them again only when the best run, its
    files, the data it recorded or the drawing code changed."""
    import importlib
    import os

    from common import report

    code = tmp_path / "drawing" / "pictures.py"
    code.parent.mkdir()
    code.write_text("drawn = []\n\n\ndef pictures(run):\n    from common import plotting\n\n"
                    "    drawn.append(run.run_id)\n    fig, ax = plotting.pyplot().subplots()\n"
                    "    ax.plot([0, len(drawn)])\n    return [('a picture', fig)]\n")
    monkeypatch.syspath_prepend(str(code.parent))
    module = importlib.import_module("pictures")
    drawn, figures = module.drawn, {"titanic": module.pictures}
    best, second = trained
    _, page, _ = report.write(figures=figures)
    first = page.read_text()
    assert drawn == [best.run_id] and f"a picture ({best.run_id})" in first
    report.write(figures=figures)
    assert drawn == [best.run_id] and page.read_text() == first  # kept: the same page, nothing drawn
    update_record(best.path, lambda r: {"kaggle_submissions": [{"ref": 1, "public_score": 0.77}]})
    report.write(figures=figures)  # a sync fills in run.json's scores: the pictures show the same
    assert len(drawn) == 1
    oof = best.path / "oof.parquet"
    os.utime(oof, ns=(oof.stat().st_atime_ns, oof.stat().st_mtime_ns + 1_000_000_000))  # the predictions rewritten
    report.write(figures=figures)
    assert len(drawn) == 2
    code.write_text(code.read_text() + "# drawn otherwise now\n")
    report.write(figures=figures)
    assert len(drawn) == 3
    saved = kit_home / "reports" / ".pictures" / "titanic.json"
    saved.write_text('{"key": ')  # damaged: drawn again, and kept again
    report.write(figures=figures)
    assert len(drawn) == 4 and json.loads(saved.read_text())["run_id"] == best.run_id
    shutil.rmtree(best.path)  # another best run: its own pictures
    _, page, _ = report.write(figures=figures)
    assert drawn[-1] == second.run_id and f"a picture ({second.run_id})" in page.read_text()
    assert f"a picture ({best.run_id})" not in page.read_text()


def test_report_plots_the_optuna_history_of_each_study(data_dir, kit_home, storage_url):
    """Over every storage backend: the default journal and a real PostgreSQL."""
    from common import report, tuning

    tuning.tune(TITANIC, "logreg", n_trials=3, n_folds=3, storage_url=storage_url)
    runner.train(TITANIC, "fast", n_folds=3, progress=False)
    _, page, sections = report.write(["titanic"], storage_url)
    trials = sections[0].studies["titanic:logreg"]
    assert len(trials) == 3
    assert [own for _, _, own in trials] == [True, False, False]  # the line tuning is measured against
    text = page.read_text()
    assert "Optuna optimisation history (titanic:logreg)" in text
    # fold spread + importance of the fast run + history (no LB scores, no drift check yet)
    assert text.count("data:image/png;base64,") == 3


def test_a_damaged_journal_costs_its_plot_once_and_the_report_is_still_written(trained, kit_home):
    journal = kit_home / "runs" / "titanic" / "optuna.journal"
    journal.write_text("garbage\n")
    result = run_script("leaderboard.py", env=env_for(kit_home))
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and "skipping the Optuna history of titanic" in warnings[0]
    assert "damaged at line 1" in warnings[0] and "## titanic" in (kit_home / "reports" / "leaderboard.md").read_text()
    assert journal.read_text() == "garbage\n"  # a report never repairs what it reads


def test_labels_from_the_data_are_drawn_without_missing_glyphs():
    """Page names and terms in any script: what the fonts cannot draw is percent-encoded, so no empty boxes."""
    import warnings

    from common import plotting

    plt = plotting.pyplot()
    text = "習近平_zh.wikipedia.org Москва fire 🔥 Û_"
    shown = plotting.drawable(text)
    assert "Москва" in shown and "%F0%9F%94%A5" in shown  # Cyrillic is in every default font, this emoji in none
    assert urllib.parse.unquote(shown) == text
    fig, ax = plt.subplots()
    ax.set_title(shown)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns once per glyph it lacks
        fig.savefig(io.BytesIO(), format="png")
    plt.close(fig)
