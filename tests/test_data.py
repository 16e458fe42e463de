"""Data layer: source order, cache manifest, safe unzip, and one clear DataError per bad input."""

import errno
import io
import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest

import competitions
from common import data, paths
from common.errors import DataError, describe_os_error

TITANIC = competitions.get("titanic")


def copy_titanic(shared_kaggle: Path, root: Path) -> Path:
    target = root / "titanic"
    shutil.copytree(shared_kaggle / "titanic", target)
    return target


def zip_folder(folder: Path, zip_path: Path, extra: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(zip_path, "w") as zf:
        for path in folder.iterdir():
            zf.write(path, path.name)
        for name, blob in (extra or {}).items():
            zf.writestr(name, blob)
    return zip_path


def zip_with_train_zipped_inside(shared_kaggle: Path, tmp_path: Path, zip_path: Path) -> Path:
    """Titanic's files zipped as Kaggle ships Web Traffic's: one of them zipped again inside the zip."""
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        zf.write(shared_kaggle / "titanic" / "train.csv", "train.csv")
    folder = tmp_path / "src"
    folder.mkdir()
    for name in ("test.csv", "gender_submission.csv"):
        shutil.copy(shared_kaggle / "titanic" / name, folder / name)
    return zip_folder(folder, zip_path, {"train.csv.zip": inner.getvalue()})


def test_data_dir_folder_is_used_in_place(data_dir):
    files = data.fetch(TITANIC)
    assert files.source == "data-dir"
    assert files.folder == data_dir / "titanic"
    assert set(files.sha256) == {"train.csv", "test.csv", "gender_submission.csv"}


def test_data_dir_zip_is_unpacked_into_verified_cache(shared_kaggle, tmp_path, kit_home):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    zip_folder(shared_kaggle / "titanic", mirror / "titanic.zip")
    files = data.fetch(TITANIC, mirror)
    assert files.folder == kit_home / "data" / "titanic"
    manifest = json.loads((files.folder / data.MANIFEST).read_text())
    assert manifest["files"]["train.csv"] == data.sha256_file(shared_kaggle / "titanic" / "train.csv")
    # Same zip again: the cache is reused, not unpacked again.
    mtime = (files.folder / "train.csv").stat().st_mtime_ns
    assert data.fetch(TITANIC, mirror).folder == files.folder
    assert (files.folder / "train.csv").stat().st_mtime_ns == mtime


@pytest.mark.parametrize("name", ["titanic.zip", "titanic (1).zip"])
def test_the_competitions_zip_itself_is_a_data_dir(shared_kaggle, tmp_path, kit_home, monkeypatch, name):
    """The zip as Kaggle's download button saves it (a browser renames a second copy), given as --data-dir or
    KAGGLE_DATA_DIR: unpacked into the verified cache; files zipped one by one inside it (Web Traffic's) too."""
    download = zip_with_train_zipped_inside(shared_kaggle, tmp_path, tmp_path / name)
    files = data.fetch(TITANIC, download)
    assert files.source == "data-dir" and files.folder == kit_home / "data" / "titanic"
    assert files.sha256["train.csv"] == data.sha256_file(shared_kaggle / "titanic" / "train.csv")
    assert sorted(p.name for p in files.folder.iterdir()) == sorted([*TITANIC.files, data.MANIFEST])
    monkeypatch.setenv("KAGGLE_DATA_DIR", str(download))
    mtime = (files.folder / "train.csv").stat().st_mtime_ns
    assert data.load(TITANIC)[0].folder == files.folder  # the same zip again: the cache, not unpacked again
    assert (files.folder / "train.csv").stat().st_mtime_ns == mtime
    with pytest.raises(DataError, match=r"house-prices: .*titanic.*zip does not contain sample_submission\.csv, "
                                        r"data_description\.txt \(it holds: gender_submission\.csv, test\.csv, "
                                        r"train\.csv\.zip\)$"):
        data.fetch(competitions.get("house-prices"), download)  # another competition's zip, named as such


@pytest.mark.parametrize("mount", ["competitions/titanic", "titanic"])
def test_kaggle_notebook_input_is_used_where_notebooks_mount_it(shared_kaggle, tmp_path, monkeypatch, mount):
    """Notebooks mount an attached competition at /kaggle/input/competitions/<slug> (older ones at <slug>)."""
    monkeypatch.setattr(data, "KAGGLE_INPUT", tmp_path / "input")
    shutil.copytree(shared_kaggle / "titanic", tmp_path / "input" / mount)
    files = data.fetch(TITANIC)
    assert files.source == "kaggle-input" and files.folder == tmp_path / "input" / mount


def test_a_data_dir_with_a_tilde_is_the_home_folder(shared_kaggle, tmp_path, monkeypatch):
    """KAGGLE_DATA_DIR="~/kaggle" in quotes, or from a Makefile: no shell expands it."""
    monkeypatch.setenv("HOME", str(tmp_path))
    copy_titanic(shared_kaggle, tmp_path / "kaggle")
    assert data.fetch(TITANIC, "~/kaggle").folder == tmp_path / "kaggle" / "titanic"
    monkeypatch.setenv("KIT_HOME", "~/kit")
    assert paths.home() == tmp_path / "kit"


def test_a_data_dir_that_is_the_competition_folder_itself_is_used_or_says_where_to_point(data_dir, tmp_path):
    """``--data-dir ~/Downloads/titanic``: a folder named as the competition is taken as its folder; one of another
    name (which could hold another competition's train.csv) gets a hint instead."""
    assert data.fetch(TITANIC, data_dir / "titanic").folder == data_dir / "titanic"
    shutil.copytree(data_dir / "titanic", tmp_path / "short" / "titanic")
    (tmp_path / "short" / "titanic" / "test.csv").unlink()
    with pytest.raises(DataError, match=r"titanic: test.csv missing from .*short/titanic \(needs train.csv"):
        data.fetch(TITANIC, tmp_path / "short" / "titanic")
    shutil.copytree(data_dir / "titanic", tmp_path / "downloads")
    with pytest.raises(DataError, match=r"itself holds the files: point --data-dir / KAGGLE_DATA_DIR at "
                                        rf"{tmp_path}, the folder above it"):
        data.fetch(TITANIC, tmp_path / "downloads")


def test_a_runs_files_are_used_where_its_record_found_them(shared_kaggle, tmp_path, monkeypatch):
    """The report's pictures, submit and ensembles read the files of a run trained with --data-dir without it."""
    from common import runner

    copy_titanic(shared_kaggle, tmp_path / "mirror")
    record, _ = runner.train(TITANIC, "fast", n_folds=3, data_dir=tmp_path / "mirror", progress=False)
    assert data.load(TITANIC, used_by=record.data)[0].folder == tmp_path / "mirror" / "titanic"
    copy_titanic(shared_kaggle, tmp_path / "other")  # a data dir given now still wins
    assert data.load(TITANIC, tmp_path / "other", used_by=record.data)[0].folder == tmp_path / "other" / "titanic"
    monkeypatch.setenv("KAGGLE_DATA_DIR", str(tmp_path / "other"))  # set in the shell for other work: not given now
    assert data.load(TITANIC, used_by=record.data)[0].folder == tmp_path / "mirror" / "titanic"
    assert data.load(TITANIC)[0].folder == tmp_path / "other" / "titanic"  # for work that is not a run's

    class Searched(Exception):
        pass

    def search(*args, **kwargs):
        raise Searched

    monkeypatch.setattr(data, "fetch", search)
    test_csv = tmp_path / "mirror" / "titanic" / "test.csv"
    test_csv.write_bytes(test_csv.read_bytes().replace(b"\r\n", b"\n"))  # the same table, other bytes
    with pytest.raises(Searched):  # no longer the files the run used: found the usual way
        data.load(TITANIC, used_by=record.data)


@pytest.mark.parametrize("name", [n for n in competitions.names() if n != "web-traffic-stage2"])  # stage 2: no
def test_the_sample_submission_alone_is_read_as_the_full_load_reads_it(name, data_dir):         # real files here
    """submit.py checks a run's file against the sample submission alone (Web Traffic's train and key would take
    19 s at full size): the same table with the same dtypes as the full load's, and no other file read."""
    import dataclasses

    import pandas as pd

    comp = competitions.get(name)
    full = data.load(comp)[1].sample_submission

    def no_load(files):
        raise AssertionError("the sample alone was asked for")

    alone = data.load_sample(dataclasses.replace(comp, load=no_load))
    pd.testing.assert_frame_equal(alone, full)


def test_files_unpacked_and_checked_are_parsed_once(shared_kaggle, tmp_path):
    """A new zip's tables are loaded to check them before they may replace the cache; load() returns those rather
    than parsing every file again (~45 s for Web Traffic at full size)."""
    import dataclasses

    calls = []
    counting = dataclasses.replace(TITANIC, load=lambda files: calls.append(files.folder) or TITANIC.load(files))
    (tmp_path / "mirror").mkdir()
    zip_folder(shared_kaggle / "titanic", tmp_path / "mirror" / "titanic.zip")
    files, loaded = data.load(counting, tmp_path / "mirror")
    assert len(calls) == 1 and files.source == "data-dir" and len(loaded.train) == 891
    data.load(counting, tmp_path / "mirror")  # from the verified cache: parsed, once
    assert len(calls) == 2


def test_cache_is_used_when_manifest_matches_and_rejected_when_tampered(shared_kaggle, tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    zip_folder(shared_kaggle / "titanic", mirror / "titanic.zip")
    cache = data.fetch(TITANIC, mirror).folder
    assert data.fetch(TITANIC).source == "cache"  # no data dir: falls through to the cache
    (cache / "train.csv").write_text("PassengerId,Survived\n1,0\n")
    assert data._verified_cache(cache, list(TITANIC.files)) is None


def test_competition_zip_inside_slug_folder(shared_kaggle, tmp_path):
    """Digit Recognizer and Web Traffic ship as <slug>/<slug>.zip in the mirror."""
    mirror = tmp_path / "mirror"
    (mirror / "titanic").mkdir(parents=True)
    zip_folder(shared_kaggle / "titanic", mirror / "titanic" / "titanic.zip")
    files = data.fetch(TITANIC, mirror)
    assert (files.folder / "test.csv").is_file()


def test_zipped_files_inside_the_zip_are_unpacked(shared_kaggle, tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    zip_with_train_zipped_inside(shared_kaggle, tmp_path, mirror / "titanic.zip")
    files = data.fetch(TITANIC, mirror)
    assert (files.folder / "train.csv").is_file() and not (files.folder / "train.csv.zip").exists()


def test_missing_file(shared_kaggle, tmp_path):
    folder = copy_titanic(shared_kaggle, tmp_path)
    (folder / "test.csv").unlink()
    with pytest.raises(DataError, match=r"test\.csv missing from"):
        data.fetch(TITANIC, tmp_path)


def test_missing_data_dir(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        data.fetch(TITANIC, tmp_path / "nope")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("Survived,", "Survivd,", 1), r"missing column\(s\) Survived"),
        (lambda t: t.replace(",Sex,", ",Gender,", 1), r"missing column\(s\) Sex"),
        (lambda t: t.replace("\n1,0,3,", "\n1,0,third,", 1), r"Pclass must be numeric; row 1 \(PassengerId 1\)"),
        (lambda t: t.replace("\n1,0,3,", "\n1,0.5,3,", 1), r"Survived must be a whole number; row 1 "),
    ],
)
def test_wrong_columns_and_dtypes(shared_kaggle, tmp_path, edit, message):
    folder = copy_titanic(shared_kaggle, tmp_path)
    path = folder / "train.csv"
    path.write_text(edit(path.read_text().replace("\r\n", "\n")))
    files = data.fetch(TITANIC, tmp_path)
    with pytest.raises(DataError, match=message):
        TITANIC.load(files)


def test_empty_csv(shared_kaggle, tmp_path):
    folder = copy_titanic(shared_kaggle, tmp_path)
    (folder / "test.csv").write_text("")
    with pytest.raises(DataError, match=r"test\.csv is empty"):
        TITANIC.load(data.fetch(TITANIC, tmp_path))


def test_header_only_csv(shared_kaggle, tmp_path):
    folder = copy_titanic(shared_kaggle, tmp_path)
    header = (folder / "test.csv").read_text().splitlines()[0]
    (folder / "test.csv").write_text(header + "\n")
    with pytest.raises(DataError, match=r"test\.csv has 0 rows"):
        TITANIC.load(data.fetch(TITANIC, tmp_path))


def test_corrupt_zip(tmp_path, kit_home):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "titanic.zip").write_bytes(b"PK\x03\x04 this is not really a zip")
    with pytest.raises(DataError, match="not a valid zip"):
        data.fetch(TITANIC, mirror)
    assert not (kit_home / "data" / "titanic").exists()


def test_a_zip_that_does_not_fit_on_the_disk_names_where_it_was_going_and_leaves_nothing(shared_kaggle, tmp_path,
                                                                                        kit_home, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    zip_folder(shared_kaggle / "titanic", mirror / "titanic.zip")

    def disk_full(*args, **kwargs):  # what a write() on a full disk raises: an OSError that names no file
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(zipfile.ZipFile, "extract", disk_full)
    with pytest.raises(OSError) as full:
        data.fetch(TITANIC, mirror)
    assert full.value.filename == str(kit_home / "data" / "titanic")
    assert describe_os_error(full.value).startswith(f"cannot use {kit_home / 'data' / 'titanic'}: No space left on "
                                                    "device; the disk is full; free some space")
    assert list((kit_home / "data").iterdir()) == []  # no temp folder, no half cache


def test_without_credentials_the_zip_kaggles_button_saved_is_named(shared_kaggle, tmp_path, kit_home, monkeypatch):
    """A new user's usual state: no API token, and titanic.zip in ~/Downloads (a browser names the second one
    "titanic (1).zip"). The line names that file, quoted for the shell, before the credentials' help."""
    from common.errors import KaggleApiError

    for name in ("KAGGLE_DATA_DIR", "KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "user"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(home / ".kaggle"))
    monkeypatch.setattr(data, "KAGGLE_INPUT", tmp_path / "no-kaggle-input")
    monkeypatch.chdir(kit_home)
    downloads = home / "Downloads"
    downloads.mkdir(parents=True)
    (downloads / "titanic").mkdir()  # unzipped there once, and downloaded again since: the zip is named
    zip_folder(shared_kaggle / "titanic", downloads / "titanic (1).zip")
    (downloads / "titanic-notes.zip").write_bytes(b"not the competition's")
    with pytest.raises(KaggleApiError, match=rf"^no Kaggle credentials, but {downloads}/titanic \(1\)\.zip looks like "
                                             rf"the competition's files, as Kaggle's download button gives them: "
                                             rf"--data-dir '{downloads}/titanic \(1\)\.zip' \(or KAGGLE_DATA_DIR\) "
                                             rf"uses them; to download instead, put your API token in"):
        data.fetch(TITANIC)
    (downloads / "titanic (1).zip").unlink()
    with pytest.raises(KaggleApiError, match=rf"but {downloads}/titanic looks like the competition's files"):
        data.fetch(TITANIC)
    shutil.rmtree(downloads / "titanic")
    with pytest.raises(KaggleApiError, match=r"^no Kaggle credentials: put your API token"):
        data.fetch(TITANIC)


def test_truncated_zip(shared_kaggle, tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    zip_path = zip_folder(shared_kaggle / "titanic", tmp_path / "full.zip")
    (mirror / "titanic.zip").write_bytes(zip_path.read_bytes()[:5000])
    with pytest.raises(DataError, match="not a valid zip"):
        data.fetch(TITANIC, mirror)


@pytest.mark.parametrize("member", ["../evil.csv", "/tmp/evil.csv", "sub/../../evil.csv"])
def test_zip_member_outside_target_is_refused(shared_kaggle, tmp_path, kit_home, member):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    zip_folder(shared_kaggle / "titanic", mirror / "titanic.zip", {member: b"x"})
    with pytest.raises(DataError, match="outside"):
        data.fetch(TITANIC, mirror)
    assert not (kit_home / "data" / "evil.csv").exists()
    assert not (tmp_path / "evil.csv").exists()
    assert not (kit_home / "data" / "titanic").exists()  # nothing half-unpacked is left as a cache


def test_zip_member_that_is_a_symlink_is_refused(shared_kaggle, tmp_path, kit_home):
    """A symlink member could point anywhere (~/.kaggle/kaggle.json); unpacking it would read or write there."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    zip_folder(shared_kaggle / "titanic", mirror / "titanic.zip")
    link = zipfile.ZipInfo("link.csv")
    link.external_attr = (0o120777 << 16)  # S_IFLNK: how zip stores a symlink
    with zipfile.ZipFile(mirror / "titanic.zip", "a") as zf:
        zf.writestr(link, "/etc/passwd")
    with pytest.raises(DataError, match="member 'link.csv' is a symlink; refusing to unpack this zip"):
        data.fetch(TITANIC, mirror)
    assert not (kit_home / "data" / "titanic").exists()


def test_an_unreadable_cache_manifest_fetches_again(shared_kaggle, tmp_path, caplog):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    zip_folder(shared_kaggle / "titanic", mirror / "titanic.zip")
    cache = data.fetch(TITANIC, mirror).folder
    (cache / "MANIFEST.json").write_text("{not json")
    assert data._verified_cache(cache, list(TITANIC.files)) is None and "unreadable; fetching again" in caplog.text
    assert data.fetch(TITANIC, mirror).source == "data-dir"  # unpacked again, through the checked swap
    assert data.fetch(TITANIC).source == "cache"


def test_zip_missing_a_file(shared_kaggle, tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    shutil.copy(shared_kaggle / "titanic" / "train.csv", folder / "train.csv")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    zip_folder(folder, mirror / "titanic.zip")
    with pytest.raises(DataError, match=r"does not contain test\.csv, gender_submission\.csv "
                                        r"\(it holds: train\.csv\)$"):
        data.fetch(TITANIC, mirror)


def test_a_data_dir_that_is_missing_or_a_file_is_named_as_such(tmp_path):
    titanic = competitions.get("titanic")
    with pytest.raises(DataError, match=r"data directory '.*nowhere' does not exist; set KAGGLE_DATA_DIR"):
        data.load(titanic, tmp_path / "nowhere")
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(DataError, match=r"data directory '.*a-file' is a file, neither a folder nor a zip"):
        data.load(titanic, tmp_path / "a-file")
    with pytest.raises(DataError, match=rf"data directory ' {tmp_path}' does not exist \(a space begins or ends it: "
                                        rf"did you mean '{tmp_path}'\?\)"):
        data.load(titanic, Path(f" {tmp_path}"))  # as pasted: KAGGLE_DATA_DIR=" ~/kaggle"


def test_two_runs_unpacking_at_once_swap_the_cache_in_one_at_a_time(shared_kaggle, tmp_path, kit_home):
    """The rename of the new cache waits while another process swaps its own in (flock), instead of finding a
    folder where it renames its own."""
    import threading

    from common.io import FileLock

    first, second = tmp_path / "first", tmp_path / "second"
    for mirror in (first, second):
        mirror.mkdir()
        zip_folder(shared_kaggle / "titanic", mirror / "titanic.zip")
    with zipfile.ZipFile(second / "titanic.zip", "a") as zf:
        zf.writestr("notes.txt", "another zip, the same files")  # left out of the cache: only its own files go in
    data.fetch(TITANIC, first)
    cache = kit_home / "data" / "titanic"
    lock = FileLock(cache.parent / ".titanic.swap.flock")
    lock.acquire()  # as another process swapping its cache in
    done: list = []
    worker = threading.Thread(target=lambda: done.append(data.fetch(TITANIC, second)))
    try:
        worker.start()
        worker.join(3)
        assert worker.is_alive() and not done  # unpacked and checked, waiting to swap
        manifest = json.loads((cache / data.MANIFEST).read_text())
        assert manifest["zip_sha256"] == data.sha256_file(first / "titanic.zip")
    finally:
        lock.release()
    worker.join(60)
    assert done and done[0].folder == cache
    assert json.loads((cache / data.MANIFEST).read_text())["zip_sha256"] == data.sha256_file(second / "titanic.zip")
    assert sorted(p.name for p in cache.iterdir()) == sorted([*TITANIC.files, data.MANIFEST])


def test_a_word_far_down_a_numeric_column_is_one_error_line_without_pandas_warning(tmp_path):
    """Past pandas' first block of rows, a word among numbers made pandas print a DtypeWarning (with the toolkit's
    own source path and line) above the error line; found by a damaged copy of Web Traffic's train file."""
    import warnings

    from common.competition import DataFiles, FileSpec
    from common.tables import read_table

    rows = [f"{i},{i % 7}" for i in range(1, 300_001)]
    rows[-2] = "299999,abc"
    (tmp_path / "t.csv").write_text("Id,Visits\n" + "\n".join(rows) + "\n")
    spec = FileSpec({"Id": "int", "Visits": "numeric"}, unique=("Id",))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(DataError, match=r"t\.csv: Visits must be numeric; row 299999 \(Id 299999\)"):
            read_table(DataFiles(tmp_path, "data-dir", {}), "t.csv", spec)
    assert not caught, [str(w.message) for w in caught]
