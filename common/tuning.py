"""Optuna tuning on the same persisted folds that training uses.

One study per ``<competition>:<recipe>``; a seeded TPE sampler; a median pruner fed with the running CV mean after
every fold, so hopeless settings stop after the first folds; every trial keeps its fold scores, seconds and full
params as attributes. The studies live in any of ``common.storages``' storages: the embedded journal file or an
SQLAlchemy URL (PostgreSQL first-class). ``--trials`` is the study's total of finished trials, so re-running the same
command resumes. Several processes on one study: ``common.tuning_workers``; several studies under one deadline:
``common.tuning_turns``.
"""

import itertools
import logging
import os
import re
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages import BaseStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FixedTrial, FrozenTrial, TrialState

from common.competition import Competition, Recipe, reference
from common.compute import usable_cores
from common.errors import TuningError, UsageError
from common.io import pid_alive
from common.params import recipe_defaults
from common.runs import OWN_PARAMS
from common.storages import MAX_RETRY, default_storage, display_url, open_storage, require_storage
from common.tuning_workers import run_workers

log = logging.getLogger(__name__)

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
# Counted against --trials when deciding to stop: other workers' running trials will finish too.
COUNTED = (*FINISHED, TrialState.RUNNING)
# How many choices of a space's categorical params are tried when looking for the ones that say the recipe's own
# params (a window set's name for its tuple).
MAX_CHOICE_COMBINATIONS = 256


def study_name(comp: Competition, recipe: str) -> str:
    """``<competition>:<recipe>``, under the recipe's one name where it has several."""
    return f"{comp.name}:{comp.canonical(recipe)}"


def sampler_seed(seed: int, study: optuna.Study) -> int:
    """The sampler's seed for a command that goes on with ``study``: ``seed`` itself for a new study, so a seeded
    study proposes the same points on any machine; once trials have been sampled, derived from ``seed`` and their
    count. A sampler seeded alike each time would propose the first command's random points again: resumed, a
    ridge study scored alpha 4.43 and 13.98 twice (trials 1 and 8, 2 and 9)."""
    sampled = sum(t.state != TrialState.WAITING for t in study.get_trials(deepcopy=False))
    return seed if not sampled else int(np.random.SeedSequence([seed, sampled]).generate_state(1)[0])


class _InterruptedTrials(logging.Filter):
    """Optuna logs a trial stopped by Ctrl-C or SIGTERM as a failure: two warnings and the traceback of wherever
    the fit was, before the command's own one line ("interrupted: nothing half-written was kept"). Dropped; a
    trial that fails for any other reason is logged as Optuna logs it."""

    def __init__(self) -> None:
        super().__init__()
        self.interrupted: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        trial = re.match(r"Trial (\d+) failed with ", record.getMessage())
        if trial is None:
            return True
        if record.exc_info and isinstance(record.exc_info[1], KeyboardInterrupt):  # SIGTERM's Terminated too
            self.interrupted.add(trial[1])
            return False
        return trial[1] not in self.interrupted


def _quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # its INFO lines repeat what our own log and trial lines say
    trials_log = logging.getLogger("optuna.study._optimize")
    if not any(isinstance(f, _InterruptedTrials) for f in trials_log.filters):
        trials_log.addFilter(_InterruptedTrials())


def open_study(comp: Competition, recipe: str, storage: BaseStorage, seed: int = 0) -> optuna.Study:
    """Create or load the study; refuse one that was created to optimise in the other direction."""
    _quiet_optuna()
    # Prune from the second fold on: one fold alone is too noisy to call a setting hopeless.
    pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    name = study_name(comp, recipe)
    study = optuna.create_study(study_name=name, storage=storage, pruner=pruner, direction=comp.metric.direction,
                                load_if_exists=True)
    if study.direction.name.lower() != comp.metric.direction:
        raise TuningError(f"study {name!r} in this storage was created to {study.direction.name.lower()}, but "
                          f"{comp.metric.name} must {comp.metric.direction}; delete the study or use another storage")
    study.sampler = optuna.samplers.TPESampler(seed=sampler_seed(seed, study), n_startup_trials=10)
    study.set_user_attr("competition", comp.name)
    study.set_user_attr("recipe", comp.canonical(recipe))
    study.set_user_attr("metric", comp.metric.name)
    return study


def _inside(dist: BaseDistribution, value: Any) -> Any:
    """``value`` as the distribution's own type when the distribution can suggest it, else None."""
    if isinstance(dist, CategoricalDistribution):
        return value if any(type(value) is type(c) and value == c for c in dist.choices) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(dist, IntDistribution):
        return int(value) if value == int(value) and dist.low <= value <= dist.high else None
    if isinstance(dist, FloatDistribution):
        return float(value) if dist.low <= value <= dist.high else None
    return None


class _SpaceProbe:
    """Stands in for a trial to learn a search space's distributions without a study (nothing stored, no log)."""

    def __init__(self) -> None:
        self.distributions: dict[str, BaseDistribution] = {}

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None,
                      log: bool = False) -> float:
        self.distributions[name] = FloatDistribution(low, high, step=step, log=log)
        return low

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        self.distributions[name] = IntDistribution(low, high, step=step, log=log)
        return low

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        self.distributions[name] = CategoricalDistribution(choices)
        return choices[0]


def own_trial_params(recipe: Recipe) -> dict[str, Any] | None:
    """The trial params with which ``recipe.space`` gives back the recipe's own params, or None when no choice in
    the space says them (a default outside its range).

    Queued as a study's first trial, they make the study's best never worse on its folds than the recipe untuned,
    and say what tuning gained. A categorical param may name its value (``windows: "fibonacci"`` for a tuple), so
    the choices of those that do not hold the value itself are tried.
    """
    if recipe.space is None:
        return None
    probe = _SpaceProbe()
    recipe.space(probe)
    fixed: dict[str, Any] = {}
    open_choices: dict[str, tuple] = {}
    for name, dist in probe.distributions.items():
        value = _inside(dist, recipe.params[name]) if name in recipe.params else None
        if value is not None:
            fixed[name] = value
        elif isinstance(dist, CategoricalDistribution):
            open_choices[name] = dist.choices
        else:
            return None
    for chosen in itertools.islice(itertools.product(*open_choices.values()), MAX_CHOICE_COMBINATIONS):
        params = {**fixed, **dict(zip(open_choices, chosen, strict=True))}
        try:
            said = recipe.space(FixedTrial(params))
        except ValueError:  # a param the probe's branch did not ask for
            return None
        if all(name in recipe.params and recipe.params[name] == value for name, value in said.items()):
            return params
    return None


def queue_own_trial(study: optuna.Study, recipe: Recipe) -> None:
    """Queue the recipe's own params once per study (a study that has scored them keeps its trial)."""
    params = own_trial_params(recipe)
    if params is not None:
        study.enqueue_trial(params, user_attrs={OWN_PARAMS: True}, skip_if_exists=True)


def own_trial(study: optuna.Study) -> FrozenTrial | None:
    """The finished trial of the recipe's own params, if the study has one (the newest: when the recipe's defaults
    change, the next command queues them again)."""
    return next((t for t in reversed(study.get_trials(deepcopy=False, states=FINISHED))
                 if t.user_attrs.get(OWN_PARAMS)), None)


# What a study's trials were scored with, recorded by the first command that tunes it (study user attributes).
SCORED_WITH = {"n_folds": "--folds", "model_seed": "--seed", "folds_hash": None}


def pin_scoring(study: optuna.Study, **scored_with: Any) -> None:
    """Trials are comparable only when scored alike (the best is a max over them, the pruner compares their running
    means): the command that scores its first trials records the folds and model seed, and a later one that asks
    for others is refused instead of mixing CVs of other folds into one study (a study with no finished trial yet
    takes the new command's). A study made before this was recorded gets the settings its trials show (their fold
    count and seed) or, where they show nothing, the command's."""
    name = study.study_name
    scored = study.get_trials(deepcopy=False, states=FINISHED)
    for key, value in scored_with.items():
        have = study.user_attrs.get(key) if scored else None
        if have is None and scored and key in ("n_folds", "model_seed"):  # what the trials themselves say
            shown = {len(t.user_attrs.get("fold_scores") or []) if key == "n_folds" else t.user_attrs.get("seed")
                     for t in scored if t.state == TrialState.COMPLETE}
            have = shown.pop() if len(shown) == 1 else None
        if have is None:
            study.set_user_attr(key, value)
            continue
        if have == value:
            continue
        option = SCORED_WITH[key]
        how = {"n_folds": f"on {have} folds, not {value}", "model_seed": f"with model seed {have}, not {value}",
               "folds_hash": f"on other folds (hash {have}, these are {value}: the competition's files changed "
                             "since)"}[key]
        again = f"give {option} {have} to go on with it, or " if option else ""
        raise TuningError(f"study {name!r} scored its trials {how}: their CVs could not be compared; {again}tune "
                          "into another storage (--storage FILE.journal)")


def recover_dead_trials(study: optuna.Study) -> list[int]:
    """Fail (and re-queue once) trials left RUNNING by a worker process of this host that no longer exists.

    The journal storage has no heartbeat, so a killed local worker is detected by its pid; database storages also
    get Optuna's heartbeat for workers on other machines.
    """
    host = socket.gethostname()
    recovered = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.user_attrs.get("host") != host or pid_alive(int(trial.user_attrs.get("pid", -1))):
            continue
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        failed = study._storage.get_trial(trial._trial_id)
        RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)(study, failed)
        recovered.append(trial.number)
        log.warning("trial %d was left running by dead worker pid %s: marked FAIL and re-queued",
                    trial.number, trial.user_attrs.get("pid"))
    return recovered


def make_objective(prep, recipe_name: str, seed: int) -> Callable[[optuna.Trial], float]:
    """CV of the recipe with the trial's params; reports the running mean after each fold to the pruner."""
    from sklearn.exceptions import ConvergenceWarning

    from common.runner import run_cv

    recipe = prep.competition.recipe(recipe_name)

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        trial.set_user_attr("seed", seed)
        params = {**recipe.params, **recipe.space(trial)}
        trial.set_user_attr("params", params)
        started = time.perf_counter()

        def on_fold(k: int, score: float, scores: list[float]) -> None:
            trial.set_user_attr("fold_scores", scores)
            trial.set_user_attr("seconds", round(time.perf_counter() - started, 3))
            trial.report(float(np.mean(scores)), step=k)
            if k + 1 < len(prep.folds) and trial.should_prune():
                raise optuna.TrialPruned(f"running mean {np.mean(scores):.5f} after {k + 1} folds")

        # A corner of the space where a solver stops short (scikit-learn's ConvergenceWarning, several lines each)
        # is counted on the trial's line instead of interleaving with it; other warnings are shown as they were.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            try:
                result = run_cv(prep, recipe_name, params, seed, progress=False, on_fold=on_fold, with_test=False)
            finally:
                stopped_short = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
                if stopped_short:
                    trial.set_user_attr("not_converged", stopped_short)
        for w in caught:
            if not issubclass(w.category, ConvergenceWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return result.mean

    return objective


def require_an_end(n_trials: int | None, timeout: float | None) -> None:
    if n_trials is None and timeout is None:
        raise UsageError("give --trials and/or --timeout, or tuning would never stop")


def recipes_to_tune(comp: Competition, names: list[str]) -> tuple[list[str], list[str]]:
    """The studies a tune command runs, one after another: each recipe named, and for a stack its members that
    have a search space (``train.py --params best`` of the stack then stacks their best trials); plus the stack
    members without one, which the stack runs with their own params. A recipe without a space is refused;
    ``["all"]`` is every recipe that has one."""
    if names == ["all"]:
        return [n for n in comp.recipe_names(None) if comp.recipe(n).space is not None], []
    tuned: list[str] = []
    fixed: list[str] = []
    for name in comp.recipe_names(names):
        members = comp.recipe(name).members
        if not members:
            tunable_recipe(comp, name)
            tuned.append(name)
            continue
        tunable = [m for m in members if comp.recipe(m).space is not None]
        tuned += tunable
        fixed += [m for m in members if m not in tunable]
        if not tunable:
            raise UsageError(f"no member of stack {name!r} has a search space; tunable recipes: "
                             + ", ".join(n for n, r in comp.recipes.items() if r.space is not None))
    one_each: dict[str, str] = {}  # one study per recipe, whichever of its names came first
    for name in tuned:
        one_each.setdefault(comp.canonical(name), name)
    tuned = list(one_each.values())
    return tuned, [m for m in dict.fromkeys(fixed) if m not in tuned]


def tunable_recipe(comp: Competition, recipe: str) -> None:
    if comp.recipe(recipe).space is None:
        tunable = ", ".join(n for n, r in comp.recipes.items() if r.space is not None) or "none"
        raise UsageError(f"recipe {recipe!r} of {comp.name} has no search space; tunable recipes: {tunable}")


@dataclass
class Reporter:
    """One line per finished trial: number, state, value, best so far, pruned/failed counts, progress."""

    prefix: str
    n_trials: int | None
    print_fn: Callable[[str], None] = print

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        trials = study.get_trials(deepcopy=False)
        pruned = sum(t.state == TrialState.PRUNED for t in trials)
        failed = sum(t.state == TrialState.FAIL for t in trials)
        finished = sum(t.state in FINISHED for t in trials)
        value = "-" if trial.value is None else f"{trial.value:.5f}"
        folds = len(trial.user_attrs.get("fold_scores", []))
        try:
            best = f"{study.best_value:.5f} (#{study.best_trial.number})"
        except ValueError:
            best = "-"
        total = f"/{self.n_trials}" if self.n_trials else ""
        own = " (the recipe's own params)" if trial.user_attrs.get(OWN_PARAMS) else ""
        if stopped := trial.user_attrs.get("not_converged"):
            own += f" ({stopped} fit{'s' if stopped > 1 else ''} did not converge)"
        self.print_fn(f"{self.prefix}trial {trial.number} {trial.state.name.lower()} {value} after {folds} folds "
                      f"({trial.user_attrs.get('seconds', 0):.1f}s){own} | best {best} | {pruned} pruned, {failed} "
                      f"failed | {finished}{total} finished")


def finished_count(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def work(comp: Competition, recipe: str, storage_url: str | None, n_trials: int | None, deadline: float | None,
         seed: int, n_folds: int, data_dir: str | None, index: int | None = None,
         prepared: dict | None = None) -> int:
    """One worker: optimise until the study has ``n_trials`` finished trials or the deadline passes.

    Models use ``seed`` (so ``train.py --params best --seed S`` reproduces a trial's CV); the sampler uses
    ``seed + index`` so parallel workers do not propose the same points. ``prepared`` keeps the loaded files,
    features and folds for the next study of the same command.
    """
    from common.runner import prepare, training_here

    storage, _ = open_storage(storage_url, comp.name)
    study = open_study(comp, recipe, storage, seed=seed + (index or 0))
    prep = None if prepared is None else prepared.get((comp.name, n_folds, data_dir))
    if prep is None:
        prep = prepare(comp, n_folds, data_dir)
        if prepared is not None:
            prepared[(comp.name, n_folds, data_dir)] = prep
    pin_scoring(study, folds_hash=prep.folds.hash)
    callbacks: list[Callable] = [Reporter("" if index is None else f"[w{index}] ", n_trials)]
    if n_trials is not None:
        callbacks.insert(0, optuna.study.MaxTrialsCallback(n_trials, states=COUNTED))
        if finished_count(study) >= n_trials:
            return 0
    timeout = None if deadline is None else max(0.0, deadline - time.time())
    before = len(study.get_trials(deepcopy=False))
    with training_here():
        try:
            study.optimize(make_objective(prep, recipe, seed=seed), timeout=timeout, callbacks=callbacks,
                           gc_after_trial=True)
        except AssertionError as exc:
            failure = _recording_failure(exc)
            if failure is None:
                raise
            raise failure from None
    return len(study.get_trials(deepcopy=False)) - before


def _recording_failure(exc: AssertionError) -> OSError | None:
    """What made Optuna assert, if the machine refused: when the storage cannot record a trial's end (a full disk
    under the journal), Optuna raises "Should not reach." in place of that error, which gets the one-line message."""
    cause: BaseException | None = exc.__context__
    while cause is not None and not isinstance(cause, OSError):
        cause = cause.__context__
    return cause


def tune(comp: Competition, recipe: str, n_trials: int | None = None, timeout: float | None = None,
         storage_url: str | None = None, workers: int = 1, seed: int = 0, n_folds: int | None = None,
         data_dir: str | None = None, prepared: dict | None = None, say_study: bool = True) -> optuna.Study:
    """Run ``workers`` local processes on one study; returns the study when they are done (``prepared``: as in
    ``work``, for one worker; ``say_study``: log which study in which storage, once per study in a command)."""
    tunable_recipe(comp, recipe)
    n_folds = n_folds or comp.default_folds
    require_an_end(n_trials, timeout)
    cores = usable_cores()
    if workers > cores:  # each worker is a process fitting models: past the cores they only slow each other down
        raise UsageError(f"--workers {workers} is more than the {cores} CPU core{'s' * (cores > 1)} this process may "
                         f"use; use at most {cores} here, and more machines on one shared --storage to go wider")
    if n_trials is not None and workers > n_trials:
        log.info("%d trials to run: starting %d workers, not %d", n_trials, n_trials, workers)
        workers = n_trials
    storage, resolved = open_storage(storage_url, comp.name)
    study = open_study(comp, recipe, storage, seed=seed)
    pin_scoring(study, n_folds=n_folds, model_seed=seed)
    recover_dead_trials(study)
    if n_trials is None or finished_count(study) < n_trials:
        queue_own_trial(study, comp.recipe(recipe))
    deadline = None if timeout is None else time.time() + timeout
    log.log(logging.INFO if say_study else logging.DEBUG, "study %s in %s: %d finished trials so far",
            study.study_name, display_url(resolved), finished_count(study))
    if workers <= 1:
        work(comp, recipe, resolved, n_trials, deadline, seed, n_folds, data_dir, prepared=prepared)
    else:
        run_workers(workers, reference(comp), recipe, resolved, n_trials, deadline, seed, n_folds, data_dir)
    return optuna.load_study(study_name=study.study_name, storage=storage)


def best_params(comp: Competition, recipe: str, storage_url: str | None = None) -> tuple[dict, dict]:
    """The best finished trial's full params, and where they came from (for the run record).

    For a stacking recipe: each member as the stack runs it (the stack's own changes to a member, such as House
    Prices' linear members keeping the partial sales, stay), with the values its best trial tuned on top.
    """
    members = comp.recipe(recipe).members
    if members:
        stacked = recipe_defaults(comp, recipe)
        params: dict[str, Any] = {"members": {}, "meta": stacked["meta"]}
        sources = {}
        for member in members:
            params["members"][member] = stacked["members"][member]
            try:
                tuned, sources[member] = best_params(comp, member, storage_url)
            except UsageError:
                sources[member] = {"kind": "recipe"}
                continue
            own = comp.recipe(member).params
            params["members"][member] = {**stacked["members"][member],
                                         **{k: v for k, v in tuned.items() if own.get(k) != v}}
        if all(src["kind"] == "recipe" for src in sources.values()):
            raise UsageError(f"no member of stack {recipe!r} has been tuned; run scripts/tune.py {comp.name} "
                             f"--recipe <member> first (members: {', '.join(members)})")
        return params, {"kind": "stack", "members": sources}
    name = study_name(comp, recipe)
    require_storage(storage_url or default_storage(comp.name),
                    f"study {name!r} is not there: run scripts/tune.py {comp.name} --recipe {recipe}"
                    + (f" --storage {storage_url}" if storage_url else "") + " first")
    storage, resolved = open_storage(storage_url, comp.name)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
        trial = study.best_trial
    except KeyError as exc:
        raise UsageError(f"no study {name!r} in {display_url(resolved)}; run scripts/tune.py {comp.name} "
                         f"--recipe {recipe} first") from exc
    except ValueError as exc:
        raise UsageError(f"study {name!r} has no finished trial yet") from exc
    params = trial.user_attrs.get("params") or trial.params
    source = {"kind": "study", "study": name, "storage": display_url(resolved), "trial": trial.number,
              "value": trial.value, "fold_scores": trial.user_attrs.get("fold_scores"),
              "folds_hash": study.user_attrs.get("folds_hash")}
    if trial.user_attrs.get(OWN_PARAMS):  # no trial beat the recipe as it is: its CV is no best of many tries
        source[OWN_PARAMS] = True
    return params, source
