"""Imported first by every script: puts the checkout the script belongs to first on ``sys.path``, and stops with one
line when the Python running it is not one the toolkit was installed into.

The ``.venv`` finds ``common`` and ``competitions`` through its editable install, which names the folder where
``make setup`` ran. In a copied checkout that would run the other copy's code, silently (and record the other
copy's commit and code fingerprint with the run); in a moved or renamed one, every script failed with a traceback.
With this, a script always runs the code beside it.

The README's ``python scripts/<name>.py`` commands, run by a Python other than the ``.venv``'s (the system's,
the venv not activated) ended in a traceback about pandas: it now says which Python to use instead.
"""

import os
import shlex
import sys
from importlib.util import find_spec
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path[:1] != [str(ROOT)]:
    sys.path.insert(0, str(ROOT))

# What every script needs before it can say anything itself (a part installed on demand, torch, says so itself);
# pyarrow writes every run's predictions.
CORE_MODULES = ("numpy", "pandas", "pyarrow", "sklearn", "lightgbm", "optuna")


def _instead() -> str:
    """The command to run instead: this one with the .venv's Python, or how to make that first."""
    venv = ROOT / ".venv"
    shown = Path(os.path.relpath(venv)) if Path.cwd().resolve() == ROOT else venv
    command = shlex.join([str(shown / "bin" / "python"), *sys.argv])
    if Path(sys.prefix).resolve() == venv.resolve():  # the .venv itself lacks them (an install cut short)
        return f"make setup (in {ROOT}) installs them into it"
    if (venv / "bin" / "python").exists():
        return f"run it with the .venv's Python: {command} (or source {shown / 'bin' / 'activate'} first)"
    return f"make setup (in {ROOT}) makes the .venv, then: {command}; or pip install -e . into this Python"


def _refuse(why: str) -> None:
    print(f"error: {why}; {_instead()}", file=sys.stderr)
    sys.exit(2)  # a usage error, as the scripts' own


if sys.version_info < (3, 11):  # noqa: UP036 (the Python running this, not the one ruff assumes)
    _refuse(f"the toolkit needs Python 3.11 or newer, and {sys.executable} is {sys.version.split()[0]}")
if missing := [name for name in CORE_MODULES if find_spec(name) is None]:
    _refuse(f"{sys.executable} does not have the toolkit's packages installed ({', '.join(missing)} missing)")
