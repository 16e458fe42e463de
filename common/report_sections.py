"""What the CV leaderboard report shows of each competition: its runs best first, the trials of its studies, the
saved drift check and the run ``submit.py`` would pick - read from the run records and the tuning storage, and
drawn as tables by ``report.py`` and as pictures by ``report_pictures.py``."""

import logging
from dataclasses import dataclass
from typing import Any

from common import drift
from common.metrics import Metric, by_name
from common.runs import RunRecord, best_run, best_unsent, load_runs

log = logging.getLogger(__name__)


@dataclass
class Section:
    name: str
    metric: Metric
    runs: list[RunRecord]  # sorted best first
    # study name -> (trial number, value, whether it is the recipe's own params) of its complete trials
    studies: dict[str, list[tuple[int, float, bool]]]
    drift: dict[str, Any] | None = None  # the saved adversarial validation (common.drift), if any
    best: RunRecord | None = None  # the best by CV as submit.py picks it (runs.best_run)
    unsent: RunRecord | None = None  # the best by CV whose file Kaggle does not have

    @property
    def ensembles(self) -> list[RunRecord]:
        return [r for r in self.runs if r.ensemble]

    @property
    def explained(self) -> RunRecord | None:
        """The best run whose record says what its model relied on."""
        return next((r for r in self.runs if r.importance.get("features")), None)


def present(competitions: list[str] | None = None, runs: list[RunRecord] | None = None) -> list[str]:
    """The competitions that have runs (of the ones asked for, when given): cheap, reads only run records."""
    names = sorted({r.competition for r in (load_runs() if runs is None else runs)})
    return [n for n in competitions if n in names] if competitions else names


def collect(competitions: list[str] | None = None, storage: str | None = None) -> list[Section]:
    """Runs grouped by competition (only those present, or the ones asked for), best CV first."""
    runs = load_runs()
    sections = []
    for name in present(competitions, runs):
        mine = [r for r in runs if r.competition == name]
        if not mine:
            continue
        metric = by_name(mine[0].metric["name"], mine[0].metric.get("direction"))
        sections.append(Section(name, metric, metric.rank(mine, lambda r: r.cv["mean"]),
                                _studies(name, storage), drift.load(name), best_run(mine, metric, quiet=True),
                                best_unsent(mine, metric, quiet=True)))
    return sections


def _studies(name: str, storage: str | None) -> dict[str, list[tuple[int, float, bool]]]:
    """Finished trials of this competition's studies, from ``storage`` (a journal file or any database URL, as for
    tune.py) or, by default, the competition's own journal."""
    from common import storages

    url = storage or storages.default_storage(name)
    local = storages.storage_file(url)
    if local is not None and not local.is_file():  # never created by reading it
        return {}
    try:
        return storages.histories(url, prefix=f"{name}:")
    except Exception as exc:  # noqa: BLE001 - an unreadable storage must not stop the report
        log.warning("skipping the Optuna history of %s from %s: %s", name, storages.display_url(url), reason(exc))
        return {}


def reason(exc: Exception) -> str:
    """Why a part of the report was skipped, in one line (a missing file's own text is often just its path)."""
    if isinstance(exc, FileNotFoundError):
        return f"{exc.filename or exc} is missing"
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__



def counted(n: int, thing: str) -> str:
    return f"{n} {thing}" if n == 1 else f"{n} {thing}s"
