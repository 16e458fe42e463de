"""Several studies tuned one after another under one deadline, the time shared by what a trial of each takes.

An equal share of the time gave House Prices' ridge, whose trials take 0.7 s, 84 trials and LightGBM 16
(BENCHMARKS.md); the studies now end with about as many trials each.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna

from common.cli import duration_text
from common.competition import Competition
from common.tuning import FINISHED, finished_count, tune


def trial_seconds(study: optuna.Study) -> float | None:
    """What the study's next trial may take: the median seconds of its finished trials, pruned ones included (the
    pruner will stop some of the next ones too), or None before any has finished."""
    seconds = [t.user_attrs["seconds"] for t in study.get_trials(deepcopy=False, states=FINISHED)
               if t.user_attrs.get("seconds")]
    return float(np.median(seconds)) if seconds else None


@dataclass
class Turn:
    """One study's turn in ``tune_in_turn``: its share of the time and what a trial of it takes so far."""

    recipe: str
    index: int
    of: int
    seconds: float | None = None
    trial_seconds: float | None = None
    round_of: str = ""

    def __str__(self) -> str:
        text = f"tuning {self.recipe} ({self.index + 1} of {self.of}{self.round_of})"
        if self.seconds is None:
            return text
        each = "" if not self.trial_seconds else (f": about {self.seconds / self.trial_seconds:.0f} trials of "
                                                  f"{self.trial_seconds:.1f}s")
        return f"{text} for about {duration_text(self.seconds)}{each}"


# Turns per study under one deadline: each later round goes by what the trials took in the earlier ones. A
# recipe's own params are often its cheapest trial (House Prices' LightGBM: 3.4 s against ~8 s for its random
# trials), so a share made from them alone would leave the dearer studies short.
ROUNDS = 3


def level_shares(counts: dict[str, int], costs: dict[str, float], budget: float) -> dict[str, float]:
    """Seconds for each study such that, with its trials taking ``costs`` seconds, the studies' trial counts come
    out as level as ``budget`` allows: those with the fewest trials are raised first (water filling)."""
    def spent(level: float) -> float:
        return sum(costs[n] * max(0.0, level - counts[n]) for n in counts)

    low, high = float(min(counts.values())), max(counts.values()) + budget / min(costs.values())
    for _ in range(100):
        level = (low + high) / 2
        low, high = (level, high) if spent(level) < budget else (low, level)
    return {n: costs[n] * max(0.0, low - counts[n]) for n in counts}


def tune_in_turn(comp: Competition, recipes: list[str], n_trials: int | None = None, timeout: float | None = None,
                 announce: Callable[[str], None] = print, workers: int = 1, rounds: int = ROUNDS,
                 **options: Any) -> dict[str, optuna.Study | None]:
    """Tune several recipes one after another, under one ``timeout`` for them all; a recipe the deadline leaves no
    turn is None.

    With a deadline, every study first runs its recipe's own params (unless it has a finished trial), which says
    what a trial of it takes; then ``rounds`` rounds share the rest by the median time of each study's trials so
    far, so that the studies end with about as many trials each. An equal share of the time gave House Prices'
    ridge, whose trials take 0.7 s, 84 trials and LightGBM 16 (BENCHMARKS.md). With ``workers``, each turn starts
    its worker processes anew (2.2 s more per turn than one in-process worker, House Prices on 2 cores).
    """
    start = time.time()
    deadline = None if timeout is None else start + timeout
    studies: dict[str, optuna.Study | None] = dict.fromkeys(recipes)
    options.setdefault("prepared", {})  # the files, features and folds loaded once for every study
    if deadline is None or len(recipes) == 1:
        for i, recipe in enumerate(recipes):
            if len(recipes) > 1:
                announce(str(Turn(recipe, i, len(recipes))))
            left = None if deadline is None else deadline - time.time()
            studies[recipe] = tune(comp, recipe, n_trials=n_trials, timeout=left, workers=workers, **options)
        return studies
    announce(f"{len(recipes)} studies share {duration_text(timeout or 0)} by what a trial of each takes: first "
             "a trial of each recipe's own params, where its study has no finished trial")
    for recipe in recipes:
        if time.time() < deadline:  # one trial, or none where the study has one finished already
            studies[recipe] = tune(comp, recipe, n_trials=1, timeout=deadline - time.time(), **options)
    first_took = time.time() - start
    no_time: list[str] = []
    for r in range(rounds):
        open_ = {n: s for n, s in studies.items()
                 if s is not None and (n_trials is None or finished_count(s) < n_trials)}
        known = {n: trial_seconds(s) for n, s in open_.items()}
        typical = float(np.median([c for c in known.values() if c] or [1.0]))
        costs = {n: c or typical for n, c in known.items()}
        round_end = time.time() + (deadline - time.time()) / (rounds - r)
        turns = list(open_)
        for i, recipe in enumerate(turns):
            left = round_end - time.time()
            rest = turns[i:]
            share = level_shares({n: finished_count(open_[n]) for n in rest}, {n: costs[n] for n in rest},
                                 max(left, 0.0))[recipe]
            if share < costs[recipe] / 2:  # another trial would end nearer the next turn's share than its own
                if r == rounds - 1 and left < costs[recipe] / 2:
                    no_time.append(f"{recipe} ({costs[recipe]:.1f}s a trial)")
                continue
            which = f", round {r + 1} of {rounds}" if rounds > 1 else ""
            announce(str(Turn(recipe, i, len(turns), share, costs[recipe], which)))
            studies[recipe] = tune(comp, recipe, n_trials=n_trials, timeout=share, workers=workers,
                                   say_study=False, **options)  # said at its first trial; its lines count on
    if no_time:
        announce(f"no time left for another trial of {', '.join(no_time)}: the first trials took "
                 f"{duration_text(first_took)} of the {duration_text(timeout or 0)}; a longer --timeout gives more")
    return studies
