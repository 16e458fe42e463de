"""Find, download, unpack, verify and load a competition's files.

Sources, first match wins (see README "Data sources"):
1. ``--data-dir`` / ``KAGGLE_DATA_DIR``: a folder holding ``<slug>/`` (files or ``<slug>.zip``) or ``<slug>.zip``;
2. ``/kaggle/input/<slug>`` inside a Kaggle notebook;
3. the cache ``data/<slug>/`` when every file still matches its sha256 manifest;
4. the Kaggle API through the official client (``common.kaggle_api``), unpacked safely into the cache.
"""

import hashlib
import json
import logging
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pandas as pd

from common import paths
from common.competition import Competition, FileSpec
from common.errors import DataError

log = logging.getLogger(__name__)

KAGGLE_INPUT = Path("/kaggle/input")
MANIFEST = "MANIFEST.json"


@dataclass(frozen=True)
class DataFiles:
    folder: Path
    source: str  # data-dir | kaggle-input | cache | kaggle-api
    sha256: dict[str, str]

    def path(self, name: str) -> Path:
        return self.folder / name


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


def fetch(comp: Competition, data_dir: str | Path | None = None, force_download: bool = False) -> DataFiles:
    """Return a folder holding every file the competition needs, with their sha256."""
    names = list(comp.files)
    data_dir = data_dir or os.environ.get("KAGGLE_DATA_DIR")
    if data_dir:
        return _from_data_dir(comp, Path(data_dir), names)

    notebook = KAGGLE_INPUT / comp.slug
    if _has_all(notebook, names):
        log.info("using Kaggle notebook input %s", notebook)
        return DataFiles(notebook, "kaggle-input", _hash_files(notebook, names))

    cache = paths.data_cache(comp.slug)
    if not force_download:
        cached = _verified_cache(cache, names)
        if cached is not None:
            return cached

    from common import kaggle_api  # lazy: only this path needs the official client

    cache.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache.parent, prefix=f".download-{comp.slug}-") as tmp:
        zip_path = kaggle_api.download_competition(comp.slug, Path(tmp))
        return _unpack_to_cache(comp, zip_path, source="kaggle-api")


def _from_data_dir(comp: Competition, root: Path, names: list[str]) -> DataFiles:
    if not root.is_dir():
        raise DataError(f"data directory {root} does not exist; set KAGGLE_DATA_DIR or --data-dir to a folder")
    folder = root / comp.slug
    if _has_all(folder, names):
        log.info("using local files in %s", folder)
        return DataFiles(folder, "data-dir", _hash_files(folder, names))
    for zip_path in (folder / f"{comp.slug}.zip", root / f"{comp.slug}.zip"):
        if zip_path.is_file():
            return _unpack_to_cache(comp, zip_path, source="data-dir")
    if folder.is_dir():
        missing = [n for n in names if not (folder / n).is_file()]
        raise DataError(f"{comp.name}: {', '.join(missing)} missing from {folder} (needs {', '.join(names)})")
    raise DataError(f"{comp.name}: neither {folder}/ nor {root / (comp.slug + '.zip')} exists in the data directory")


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


def _unpack_to_cache(comp: Competition, zip_path: Path, source: str) -> DataFiles:
    """Unpack into a temp folder, verify, then swap it in as ``data/<slug>/`` with a manifest."""
    names = list(comp.files)
    cache = paths.data_cache(comp.slug)
    zip_sha = sha256_file(zip_path)
    cached = _verified_cache(cache, names)
    if cached is not None:
        manifest = json.loads((cache / MANIFEST).read_text())
        if manifest.get("zip_sha256") == zip_sha:
            return DataFiles(cache, source, cached.sha256)

    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=cache.parent, prefix=f".unpack-{comp.slug}-"))
    tmp.chmod(0o755)
    try:
        log.info("unpacking %s", zip_path)
        safe_extract(zip_path, tmp)
        for name in names:  # some competitions ship each file zipped inside the zip
            inner = tmp / f"{name}.zip"
            if not (tmp / name).is_file() and inner.is_file():
                safe_extract(inner, tmp)
                inner.unlink()
        missing = [n for n in names if not (tmp / n).is_file()]
        if missing:
            raise DataError(f"{comp.name}: {zip_path.name} does not contain {', '.join(missing)}")
        sums = _hash_files(tmp, names)
        manifest = {"source": str(zip_path), "zip_sha256": zip_sha, "files": sums}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        if cache.exists():
            shutil.rmtree(cache)
        os.replace(tmp, cache)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return DataFiles(cache, source, sums)


def safe_extract(zip_path: Path, target: Path) -> list[Path]:
    """Extract a zip, refusing any member that would land outside ``target`` (zip-slip) or is a link."""
    target = target.resolve()
    try:
        with zipfile.ZipFile(zip_path) as zf:
            members = zf.infolist()
            for info in members:
                name = PurePosixPath(info.filename.replace("\\", "/"))
                dest = (target / name).resolve()
                if name.is_absolute() or ".." in name.parts or not dest.is_relative_to(target):
                    raise DataError(f"{zip_path.name}: member {info.filename!r} would be written outside "
                                    f"{target}; refusing to unpack this zip")
                if (info.external_attr >> 16) & 0o170000 == 0o120000:
                    raise DataError(f"{zip_path.name}: member {info.filename!r} is a symlink; refusing to unpack")
            extracted = []
            for info in members:
                zf.extract(info, target)
                extracted.append(target / info.filename)
            return extracted
    except zipfile.BadZipFile as exc:
        raise DataError(f"{zip_path} is not a valid zip ({exc}); delete it and download again") from exc


def read_table(files: DataFiles, name: str, spec: FileSpec, **read_kwargs) -> pd.DataFrame:
    """Read one competition CSV and check it against its FileSpec; every failure is one DataError line."""
    path = files.path(name)
    if not path.is_file():
        raise DataError(f"{name} not found in {files.folder}")
    try:
        df = pd.read_csv(path, **read_kwargs)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{name} is empty ({path}); download it again") from exc
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{name} cannot be parsed as CSV ({path}): {str(exc).splitlines()[0]}") from exc
    validate_frame(df, spec, name)
    return df


def validate_frame(df: pd.DataFrame, spec: FileSpec, name: str) -> None:
    missing = [c for c in spec.columns if c not in df.columns]
    if missing:
        shown = ", ".join(map(str, df.columns[:12])) + (" ..." if len(df.columns) > 12 else "")
        raise DataError(f"{name} is missing column(s) {', '.join(missing)}; it has: {shown}")
    if len(df) < spec.min_rows:
        raise DataError(f"{name} has {len(df)} rows; expected at least {spec.min_rows}")
    for col, kind in spec.columns.items():
        _check_kind(df[col], kind, name)
    for prefix, kind in spec.column_prefixes.items():
        cols = [c for c in df.columns if str(c).startswith(prefix)]
        if not cols:
            raise DataError(f"{name} has no {prefix}* columns")
        bad = [c for c in cols if kind != "any" and not pd.api.types.is_numeric_dtype(df[c])]
        if bad:
            raise DataError(f"{name}: column(s) {', '.join(map(str, bad[:5]))} should be numeric")


def _check_kind(series: pd.Series, kind: str, name: str) -> None:
    if kind in ("any", "str"):
        return
    if not pd.api.types.is_numeric_dtype(series):
        sample = series[pd.to_numeric(series, errors="coerce").isna() & series.notna()].head(1).tolist()
        raise DataError(f"{name}: column {series.name} should be {kind} but holds values like {sample!r}")
    if kind == "int":
        values = series.dropna()
        if len(values) != len(series) or not (values == values.round()).all():
            raise DataError(f"{name}: column {series.name} should hold whole numbers with no gaps")
