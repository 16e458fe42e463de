"""Find, download, unpack, verify and load a competition's files (``common.tables`` reads and checks each CSV).

Sources, first match wins (see README "Data sources"):
1. ``--data-dir`` / ``KAGGLE_DATA_DIR``: a folder holding ``<slug>/`` (files or ``<slug>.zip``) or ``<slug>.zip``,
   the competition's own folder, or the competition's zip itself;
2. the competition's input inside a Kaggle notebook (``/kaggle/input/competitions/<slug>``, or ``/kaggle/input/<slug>``
   where older notebooks and attached datasets mount it);
3. the cache ``data/<slug>/`` when every file still matches its sha256 manifest;
4. the Kaggle API through the official client (``common.kaggle_api``), unpacked safely into the cache.
"""

import contextlib
import hashlib
import json
import logging
import os
import re
import shlex
import shutil
import zipfile
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd
import pyarrow as pa

from common import paths
from common.competition import Competition, Data, DataFiles
from common.errors import DataError, KaggleApiError
from common.io import held, make_temp_dir, naming, write_json_atomic
from common.tables import check_loaded, read_table

log = logging.getLogger(__name__)

KAGGLE_INPUT = Path("/kaggle/input")
MANIFEST = "MANIFEST.json"
SOURCE_WORDS = {"data-dir": "local files", "kaggle-input": "the Kaggle notebook's input"}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _hash_files(folder: Path, names: list[str]) -> dict[str, str]:
    return {name: sha256_file(folder / name) for name in names}


def _has_all(folder: Path, names: list[str]) -> bool:
    return folder.is_dir() and all((folder / n).is_file() for n in names)


Check = Callable[[Data], object]


def fetch(comp: Competition, data_dir: str | Path | None = None, force_download: bool = False,
          check: Check | None = None) -> DataFiles:
    """Return a folder holding every file the competition needs, with their sha256.

    Files that would replace the cache are loaded and checked first - by the competition's own checks and by
    ``check`` (the runner's: do they still fit the persisted folds?) - so bad files never cost a good cache.
    """
    names = list(comp.files)
    data_dir = data_dir or os.environ.get("KAGGLE_DATA_DIR")
    if data_dir:
        return _from_data_dir(comp, Path(data_dir).expanduser(), names, check)

    for notebook in notebook_inputs(comp.slug):
        found = _from_folder(comp, notebook, names, "kaggle-input", check)
        if found is not None:
            return found

    cache = paths.data_cache(comp.cache)
    if not force_download:
        cached = _verified_cache(cache, names)
        if cached is not None:
            return cached

    return _download(comp, cache, names, force_download, check)


def files_nearby(comp: Competition) -> Path | None:
    """Where a user without an API token most likely has the files: Kaggle's download button saves
    ``<slug>.zip`` (a browser makes it ``<slug> (1).zip`` the second time) in ~/Downloads, and some unzip it there or
    beside the project. The newest such zip, or a folder named ``<slug>``; None when there is none."""
    named = re.compile(rf"{re.escape(comp.slug)}( \(\d+\))?\.zip")
    try:
        places = [Path.cwd(), Path.home() / "Downloads"]
        zips = [p for place in places if place.is_dir() for p in place.iterdir()
                if named.fullmatch(p.name) and p.is_file()]
        if zips:
            return max(zips, key=lambda p: p.stat().st_mtime)
        return next((place / comp.slug for place in places if (place / comp.slug).is_dir()), None)
    except (OSError, RuntimeError):  # a folder we may not read, no home folder: only a hint is lost
        return None


def _download(comp: Competition, cache: Path, names: list[str], force: bool, check: Check | None) -> DataFiles:
    """Download through the Kaggle API into ``paths.download_dir``, which outlives an interruption (Ctrl-C, a lost
    connection, ``kill -9``) so that the next run resumes the download instead of starting over (Web Traffic's
    zip is the largest here). Processes take turns (a lock that dies with its process); one that waited takes the
    cache the other filled. The download is removed once its files are in the cache (and in the caches of the
    competitions that share it, ``shares_download_with``), or refused by the checks."""
    from common import kaggle_api  # lazy: only this path needs the official client

    if not kaggle_api.has_credentials() and (near := files_nearby(comp)) is not None:
        raise KaggleApiError(
            f"no Kaggle credentials, but {paths.shown(near)} looks like the competition's files, as Kaggle's download "
            f"button gives them: --data-dir {shlex.quote(paths.shown(near))} (or KAGGLE_DATA_DIR) uses them; to "
            f"download instead, {kaggle_api.CREDENTIALS_HELP}")
    folder = paths.download_dir(comp.slug)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with held(folder.parent / f"{folder.name}.flock", "downloading",
              f"{comp.name}: another process is downloading the same files; waiting for it"):
        cached = None if force else _verified_cache(cache, names)
        if cached is not None:
            log.info("%s: another process downloaded the files meanwhile", comp.name)
            return cached
        folder.mkdir(exist_ok=True)
        try:
            kept = sum(p.stat().st_size for p in folder.glob(f"{comp.slug}.*") if p.is_file()
                       and not p.name.endswith(kaggle_api.PARTIAL_MARKER))
            if kept and not force:
                if paths.part_download(folder):
                    log.info("%s: %.1f MB of an earlier download are in %s; the client goes on from there if "
                             "Kaggle's file is unchanged", comp.name, kept / 1e6, paths.shown(folder))
                else:
                    log.info("%s: using the download kept in %s (%.1f MB); Kaggle is asked only whether its file "
                             "changed since", comp.name, paths.shown(folder), kept / 1e6)
            zip_path = kaggle_api.download_competition(comp.slug, folder, resume=not force)
            try:
                files = _unpack_to_cache(comp, zip_path, "kaggle-api", check)
            except DataError:  # a complete download the checks refuse: the next run fetches it anew
                shutil.rmtree(folder, ignore_errors=True)
                raise
            waiting = waiting_for_download(comp)
            if waiting:
                log.info("%s: kept the download %s (%.0f MB) for %s, which is unpacked from the same file: its "
                         "first run takes it from there instead of downloading it again (delete the folder if you "
                         "will not run it)", comp.name, paths.shown(zip_path), zip_path.stat().st_size / 1e6,
                         ", ".join(waiting))
            else:
                shutil.rmtree(folder, ignore_errors=True)
            return files
        finally:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty: a download that never started leaves nothing behind


def waiting_for_download(comp: Competition, itself: bool = False) -> list[str]:
    """The competitions unpacked from the same Kaggle download as ``comp`` (``itself``: and ``comp``) that have no
    cache yet: the download is kept for them."""
    sharing = [*([(comp.name, comp.cache)] if itself else []), *comp.shares_download_with]
    return [name for name, cache in sharing if not (paths.data_cache(cache) / MANIFEST).is_file()]


def load(comp: Competition, data_dir: str | Path | None = None, force_download: bool = False,
         check: Check | None = None, used_by: Mapping[str, Any] | None = None) -> tuple[DataFiles, Data]:
    """Fetch and load a competition's files: every file checked, ids checked against the sample submission.

    New files are checked before they may replace the cache (``_unpack_to_cache``); a cache that fails the checks
    anyway (files edited by hand, checks made stricter by an update) is named as the culprit. ``used_by``: the data
    record of a run that works on (an ensemble, the report's pictures; ``files_for`` and ``load_sample`` take it
    too) - its folder is used while it still holds the files it recorded, so a ``--data-dir`` given to train need
    not be given again.
    """
    files = files_for(comp, data_dir, force_download, check, used_by)
    if files.checked is not None:
        return files, files.checked
    with _blaming_the_cache(files):
        return files, _read_and_check(comp, files)


def load_sample(comp: Competition, data_dir: str | Path | None = None,
                used_by: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """The sample submission alone, read and checked as ``load`` reads it (its FileSpec; "str" columns as text):
    what a run's file is checked against before it is sent. The other files are not read (Web Traffic's train and
    key: 19 s at full size)."""
    files = files_for(comp, data_dir, used_by=used_by)
    if files.checked is not None:
        return files.checked.sample_submission
    name = comp.submission.sample_file
    spec = comp.files[name]
    text = {column: str for column, kind in spec.columns.items() if kind == "str"}
    with _blaming_the_cache(files):
        sample = read_table(files, name, spec, **({"dtype": text} if text else {}))
    _give_back_arrow_memory()
    return sample


def _read_and_check(comp: Competition, files: DataFiles) -> Data:
    data = check_loaded(comp.load(files))
    _give_back_arrow_memory()
    return data


def _give_back_arrow_memory() -> None:
    """pandas keeps text as Arrow, whose memory pool holds on to what reading freed: at Web Traffic's full size
    about 1 GB, held through all of training where numpy cannot use it."""
    pa.default_memory_pool().release_unused()


@contextlib.contextmanager
def _blaming_the_cache(files: DataFiles):
    """Files that fail their checks in the cache were good when they went in: name the cache as the culprit (edited
    by hand, or checks made stricter by an update) and say how to get them again."""
    try:
        yield
    except DataError as exc:
        if files.source != "cache":
            raise
        raise DataError(f"{exc} - in the cached copy {files.folder}; delete that folder or point --data-dir / "
                        "KAGGLE_DATA_DIR at good files to fetch them again") from exc


def files_for(comp: Competition, data_dir: str | Path | None = None, force_download: bool = False,
              check: Check | None = None, used_by: Mapping[str, Any] | None = None) -> DataFiles:
    """The files ``load`` would read, not read: for work that needs only some of them (Web Traffic's report
    pictures read the 145 063-page train file, not the 8.7-million-row key). A finished run's own files (``used_by``,
    while their sha256 holds) come before every source but a ``data_dir`` given now: a KAGGLE_DATA_DIR set in the
    shell for other work must not hide the files a run was trained on."""
    recorded = None if data_dir else _recorded_files(comp, used_by)
    return recorded or fetch(comp, data_dir, force_download, check)


def _recorded_files(comp: Competition, record: Mapping[str, Any] | None) -> DataFiles | None:
    """A run's files where its record says they were, if every one still has the sha256 it recorded."""
    if not record or not record.get("folder"):
        return None
    folder, names, sums = Path(record["folder"]), list(comp.files), record.get("sha256") or {}
    if not _has_all(folder, names) or _hash_files(folder, names) != {n: sums.get(n) for n in names}:
        return None
    log.info("using the files the run used, in %s", folder)
    return DataFiles(folder, record.get("source", "data-dir"), {n: sums[n] for n in names})


def notebook_inputs(slug: str) -> list[Path]:
    """Where a Kaggle notebook mounts a competition's files: ``competitions/<slug>`` is where it mounts an attached
    competition today; ``<slug>`` is where older notebooks had it (and where a dataset copy of the files lands)."""
    return [KAGGLE_INPUT / "competitions" / slug, KAGGLE_INPUT / slug]


def _from_folder(comp: Competition, folder: Path, names: list[str], source: str,
                 check: Check | None) -> DataFiles | None:
    """The files as they lie in ``folder``, or unpacked into the cache where some of them are there only as
    ``<name>.zip`` (Web Traffic's files in a Kaggle notebook, or its download unzipped once); ``None`` if any is
    missing either way."""
    if _has_all(folder, names):
        log.info("using %s in %s", SOURCE_WORDS.get(source, source), folder)
        return DataFiles(folder, source, _hash_files(folder, names))
    if not all((folder / n).is_file() or (folder / f"{n}.zip").is_file() for n in names):
        return None
    return _unpack_to_cache(comp, folder, source, check)


def _from_data_dir(comp: Competition, root: Path, names: list[str], check: Check | None) -> DataFiles:
    if root.is_file() and zipfile.is_zipfile(root):  # the zip as Kaggle's download button or client saves it
        return _unpack_to_cache(comp, root, "data-dir", check)
    if not root.is_dir():
        what = "is a file, neither a folder nor a zip" if root.exists() else "does not exist"
        if (trimmed := paths.without_pasted_space(root)) is not None:
            what += f" (a space begins or ends it: did you mean '{trimmed}'?)"
        raise DataError(f"data directory '{root}' {what}; set KAGGLE_DATA_DIR or --data-dir to a folder or the "
                        "competition's zip")
    folder = root / comp.slug
    found = _from_folder(comp, folder, names, "data-dir", check)
    if found is not None:
        return found
    own = root.name == comp.slug and not folder.exists()  # the competition's own folder (~/Downloads/titanic)
    if own:
        found = _from_folder(comp, root, names, "data-dir", check)
        if found is not None:
            return found
    for zip_path in (folder / f"{comp.slug}.zip", root / f"{comp.slug}.zip"):
        if zip_path.is_file():
            return _unpack_to_cache(comp, zip_path, "data-dir", check)
    if folder.is_dir() or (own and any((root / n).is_file() for n in names)):  # its folder, short of some files
        where = folder if folder.is_dir() else root
        missing = [n for n in names if not (where / n).is_file()]
        raise DataError(f"{comp.name}: {', '.join(missing)} missing from {where} (needs {', '.join(names)}, each "
                        f"as it is or zipped as <name>.zip, or all in {comp.slug}.zip)")
    hint = (f"; {root} itself holds the files: point --data-dir / KAGGLE_DATA_DIR at {root.parent}, the folder above "
            f"it, and name this folder {comp.slug}" if _has_all(root, names) else "")
    raise DataError(f"{comp.name}: neither {folder}/ nor {root / (comp.slug + '.zip')} exists in the data "
                    f"directory{hint}")


def _verified_cache(cache: Path, names: list[str]) -> DataFiles | None:
    manifest_path = cache / MANIFEST
    if not manifest_path.is_file() or not _has_all(cache, names):
        return None
    try:
        manifest = json.loads(manifest_path.read_text())
        recorded = manifest["files"]
    except (ValueError, KeyError):
        log.warning("cache manifest %s is unreadable; fetching again", manifest_path)
        return None
    actual = _hash_files(cache, names)
    if any(recorded.get(n) != actual[n] for n in names):
        log.warning("cached files in %s do not match their manifest; fetching again", cache)
        return None
    return DataFiles(cache, "cache", actual)


def _unpack_to_cache(comp: Competition, source_path: Path, source: str, check: Check | None = None) -> DataFiles:
    """Unpack a zip - or a folder where some files are zipped one by one - into a temp folder, verify, then swap it
    in as ``data/<slug>/`` with a manifest."""
    names = list(comp.files)
    cache = paths.data_cache(comp.cache)
    zip_sha = _source_sha256(source_path, names)
    cached = _verified_cache(cache, names)
    if cached is not None:
        manifest = json.loads((cache / MANIFEST).read_text())
        if manifest.get("zip_sha256") == zip_sha:
            return DataFiles(cache, source, cached.sha256)

    tmp = make_temp_dir(cache.parent, f"unpack-{comp.slug}")
    old = None
    try:
        log.info("unpacking %s", source_path)
        with naming(cache):
            if source_path.is_dir():
                for name in names:
                    if (source_path / name).is_file():
                        shutil.copyfile(source_path / name, tmp / name)
            else:
                safe_extract(source_path, tmp, only={*names, *(f"{n}.zip" for n in names)})
            outer = source_path if source_path.is_dir() else tmp
            for name in names:  # some competitions ship each file zipped inside the zip
                inner = outer / f"{name}.zip"
                if not (tmp / name).is_file() and inner.is_file():
                    safe_extract(inner, tmp, shown=f"{source_path} > {inner.name}" if outer is tmp else str(inner))
                    if outer is tmp:
                        inner.unlink()
        missing = [n for n in names if not (tmp / n).is_file()]
        if missing:
            raise DataError(f"{comp.name}: {source_path} does not contain {', '.join(missing)}"
                            f"{_what_it_holds(source_path)}")
        sums = _hash_files(tmp, names)
        # Check the new files before they may replace anything: a bad zip must not cost the good cache.
        try:
            loaded = _read_and_check(comp, DataFiles(tmp, source, sums))
            if check is not None:
                check(loaded)
        except DataError as exc:
            raise DataError(f"{exc} (in {source_path}; the cache was left as it was)") from exc
        manifest = {"source": str(source_path), "zip_sha256": zip_sha, "files": sums}
        write_json_atomic(tmp / MANIFEST, manifest)
        # two runs started together unpack together: one swap at a time, or the second would find a folder
        # where it renames its own
        with held(cache.parent / f".{cache.name}.swap.flock", "replacing the cache"):
            if cache.exists():
                old = make_temp_dir(cache.parent, f"old-{comp.slug}")
                os.replace(cache, old / "cache")
            os.replace(tmp, cache)
    finally:
        for leftover in (tmp, old):
            if leftover is not None and leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)
    return DataFiles(cache, source, sums, checked=loaded)


def _source_sha256(source_path: Path, names: list[str]) -> str:
    """What the cache was unpacked from: the zip's sha256, or for a folder one over the files (or their zips) it
    took, so a changed file there unpacks again."""
    if not source_path.is_dir():
        return sha256_file(source_path)
    taken = [source_path / n if (source_path / n).is_file() else source_path / f"{n}.zip" for n in names]
    lines = "".join(f"{p.name} {sha256_file(p)}\n" for p in taken)
    return hashlib.sha256(lines.encode()).hexdigest()


def _what_it_holds(source_path: Path, shown: int = 6) -> str:
    """" (it holds: train_1.csv, key_1.csv, ...)": which files a zip or folder short of some has instead, so a zip of
    another competition or stage (Web Traffic's mirror holds stage 1 only) says so in the error line."""
    try:
        if source_path.is_dir():
            held = sorted(p.name for p in source_path.iterdir() if p.is_file())
        else:
            with zipfile.ZipFile(source_path) as zf:
                held = sorted(name for name in zf.namelist() if not name.endswith("/"))
    except (OSError, zipfile.BadZipFile):
        return ""
    if not held:
        return " (it holds no files)"
    more = f", ... {len(held) - shown} more" if len(held) > shown else ""
    return f" (it holds: {', '.join(held[:shown])}{more})"


def safe_extract(zip_path: Path, target: Path, shown: str | None = None, only: set[str] | None = None) -> list[Path]:
    """Extract a zip, refusing any member that would land outside ``target`` (zip-slip) or is a link.

    ``shown`` is how errors name the archive (a zip inside a zip is named through its outer zip). ``only``: extract
    just these members (every member is still checked): Web Traffic's zip holds both stages, and the files of the
    stage not run would sit in the cache for nothing.
    """
    target = target.resolve()
    shown = shown or str(zip_path)
    try:
        with zipfile.ZipFile(zip_path) as zf:
            members = zf.infolist()
            for info in members:
                name = PurePosixPath(info.filename.replace("\\", "/"))
                dest = (target / name).resolve()
                if name.is_absolute() or ".." in name.parts or not dest.is_relative_to(target):
                    raise DataError(f"{shown}: member {info.filename!r} would be written outside the folder it is "
                                    "unpacked into; refusing to unpack this zip - get the competition's files again")
                if (info.external_attr >> 16) & 0o170000 == 0o120000:
                    raise DataError(f"{shown}: member {info.filename!r} is a symlink; refusing to unpack this zip")
            extracted = []
            for info in members:
                if only is not None and info.filename not in only:
                    continue
                zf.extract(info, target)
                extracted.append(target / info.filename)
            return extracted
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise DataError(f"{shown} is not a valid zip ({exc}); delete it and download again") from exc
    except (zlib.error, NotImplementedError) as exc:  # a damaged member (bad CRC data, unknown compression)
        raise DataError(f"{shown} has a damaged member ({exc}); delete it and download again") from exc


