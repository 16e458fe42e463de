"""Imported first by every script: puts the checkout the script belongs to first on ``sys.path``.

The ``.venv`` finds ``common`` and ``competitions`` through its editable install, which names the folder where
``make setup`` ran. In a copied checkout that would run the other copy's code, silently (and record the other
copy's commit and code fingerprint with the run); in a moved or renamed one, every script failed with a traceback.
With this, a script always runs the code beside it.
"""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)
if sys.path[:1] != [ROOT]:
    sys.path.insert(0, ROOT)
