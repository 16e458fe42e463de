"""matplotlib for the report: no display needed, and labels taken from the data drawn whatever their script.

Web Traffic's page names are Chinese, Japanese, Russian...; tweets and TF-IDF terms hold emoji. matplotlib's
default font lacks most of those glyphs: it draws empty boxes and prints a warning per glyph. So CJK fonts the
machine has join the fallback list, and a character no font can draw is written as a URL writes it (``%E7%82%BA``):
readable next to its Latin part, and a page name stays one that can be pasted.
"""

import functools
import logging
import urllib.parse
from typing import Any

# Families that cover CJK on common systems (Linux packages, macOS, Windows), tried in this order where installed.
CJK_FAMILIES = ("Noto Sans CJK JP", "Noto Sans CJK SC", "Source Han Sans", "WenQuanYi Zen Hei", "Droid Sans Fallback",
                "PingFang SC", "Hiragino Sans", "Microsoft YaHei", "MS Gothic", "SimHei")


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend, with the installed CJK fonts as fallbacks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # a CJK font with no "normal" weight is a note on every lookup ("now using 500"), not something to act on
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    matplotlib.rcParams["font.family"] = [name for name, _ in _fonts()]
    return plt


@functools.cache
def _fonts() -> tuple[tuple[str, frozenset[int]], ...]:
    """(family, the code points it draws) for the default sans-serif font and each installed CJK family."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    default = font_manager.findfont(font_manager.FontProperties(family=["sans-serif"]))
    found = [(FT2Font(default).family_name, str(default))]
    installed = {f.name: f.fname for f in font_manager.fontManager.ttflist}
    found += [(name, installed[name]) for name in CJK_FAMILIES if name in installed]
    out = []
    for name, path in found:
        try:
            out.append((name, frozenset(FT2Font(path).get_charmap())))
        except (OSError, RuntimeError):  # a font file matplotlib lists but cannot open
            continue
    return tuple(out)


def drawable(text: str) -> str:
    """``text`` with each character that none of the plot's fonts can draw percent-encoded."""
    covered = _covered()
    return "".join(c if ord(c) in covered or c.isspace() else urllib.parse.quote(c) for c in str(text))


@functools.cache
def _covered() -> frozenset[int]:
    return frozenset().union(*(codes for _, codes in _fonts()))
