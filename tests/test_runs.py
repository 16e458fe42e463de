import json

import pytest

from common.runs import RunWriter, environment, load_runs


def test_run_folder_appears_only_when_complete(kit_home):
    with RunWriter("toy", "fast", {"a": 1}) as run:
        (run.path("note.txt")).write_text("x")
        assert not run.final.exists() and run.tmp.exists()
        final = run.finish({**run.header(), "cv": {"mean": 1.0}})
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


def test_existing_run_is_never_overwritten(kit_home):
    with RunWriter("toy", "fast", {}) as run:
        run.final.mkdir(parents=True)
        (run.final / "run.json").write_text("{}")
        with pytest.raises(FileExistsError):
            run.finish({})
    assert (run.final / "run.json").read_text() == "{}"


def test_corrupt_run_json_is_skipped_with_a_warning(kit_home, caplog):
    with RunWriter("toy", "fast", {}) as run:
        good = run.finish(run.header())
    bad = good.parent / "20000101-000000-fast-bad"
    bad.mkdir()
    (bad / "run.json").write_text("{not json")
    runs = load_runs("toy")
    assert [r["run_id"] for r in runs] == [good.name]
    assert "skipping" in caplog.text


def test_environment_records_versions_and_commit():
    env = environment()
    assert {"numpy", "pandas", "scikit-learn", "lightgbm"} <= set(env["libraries"])
    assert env["python"].startswith("3.")
    assert "git_commit" in env
