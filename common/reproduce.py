"""Train a run again as it was trained (``train.py --like RUN``) and say whether its CV came out the same, and if not,
which of the inputs its record holds differ: the code, the data, the folds, a library, the CPU.

Same command, same CV is a promise of the toolkit; this is how a user checks it - after an update, on another
machine, or after changing a feature, to see what the change did to the very run it started from.
"""

from collections.abc import Collection
from typing import Any

from common import paths
from common.errors import UsageError
from common.runs import PATCH_FILE, RunRecord

ENSEMBLE_KINDS = ("ensemble",)


def settings(run: RunRecord) -> dict[str, Any]:
    """The arguments of ``runner.train`` that made ``run``: recipe, its params as resolved then (the recipe's own
    defaults may have changed since), where they came from, seed, folds and folds scored."""
    if run.params_source.get("kind") in ENSEMBLE_KINDS:
        members = " ".join(run.ensemble.get("weights", {})) or "..."
        raise UsageError(f"run {run.run_id} is an ensemble of other runs, not a trained recipe; blend them again with "
                         f"python scripts/ensemble.py {run.competition} --runs {members}")
    return {"recipe_name": run.recipe, "params": dict(run.params), "seed": run.seed,
            "n_folds": run.folds.get("n_splits"), "folds_scored": run.folds_scored or None,
            "params_source": {**run.params_source, "like": run.run_id}}


def differences(old: RunRecord, new: RunRecord) -> list[str]:
    """What the two records say differs among the inputs of a CV: where a different score can come from."""
    out = []
    old_sums, new_sums = old.data.get("sha256") or {}, new.data.get("sha256") or {}
    changed = sorted(name for name in {*old_sums, *new_sums} if old_sums.get(name) != new_sums.get(name))
    if changed:
        out.append(f"the data ({', '.join(changed)})")
    if old.folds.get("hash") != new.folds.get("hash"):
        out.append(f"the folds ({old.folds.get('n_splits')} -> {new.folds.get('n_splits')}, hash "
                   f"{old.folds.get('hash')} -> {new.folds.get('hash')})")
    if old.seed != new.seed:
        out.append(f"the seed ({old.seed} -> {new.seed})")
    before, after = old.environment, new.environment
    if not same_code(before, after):
        out.append(f"the code ({_code(before)} -> {_code(after)})")
    libs_before, libs_after = before.get("libraries") or {}, after.get("libraries") or {}
    out += [f"{lib} {libs_before.get(lib, 'absent')} -> {libs_after.get(lib, 'absent')}"
            for lib in sorted({*libs_before, *libs_after}) if libs_before.get(lib) != libs_after.get(lib)]
    for key, what in (("python", "Python"), ("cpu_flags", "the CPU's flags"), ("cpu_count", "the CPU count"),
                      ("processes", "the processes")):
        if before.get(key) != after.get(key):
            out.append(f"{what} ({_shown(before.get(key))} -> {_shown(after.get(key))})")
    return out


def verdict(old: RunRecord, new: RunRecord) -> str:
    """One line: the same CV (and file) as the run it repeats, or the gap and what differs."""
    name = new.metric["name"]
    if new.cv["fold_scores"] == old.cv["fold_scores"]:
        same_file = new.submission.get("sha256") == old.submission.get("sha256")
        return (f"the same fold scores as run {old.run_id}, CV {name} {new.cv['mean']:.5f}"
                + (", and the same submission file" if same_file else ", but another submission file"))
    gap = new.cv["mean"] - old.cv["mean"]
    why = differences(old, new)
    said = ("what differs: " + "; ".join(why)) if why else (
        "nothing its record holds differs (a source of randomness the toolkit does not pin: please report it)")
    return f"CV {name} {new.cv['mean']:.5f} against run {old.run_id}'s {old.cv['mean']:.5f} ({gap:+.5f}); {said}"


def check_recipe(run: RunRecord, recipes: Collection[str]) -> None:
    """Refuse, in one line, to train ``run`` again when the code has no recipe of its name: one a user added and
    did not commit (the run's code.patch gives it back), or one removed or renamed since."""
    if run.recipe in recipes:
        return
    back = _code_back(run)
    how = (f"its code.patch adds it: {back}" if back is not None else
           f"it was removed or renamed since (the run's code: {_code(run.environment)})")
    raise UsageError(f"run {run.run_id} was trained with recipe {run.recipe!r}, which this code does not have; {how}")


def code_of(old: RunRecord, new: RunRecord) -> str | None:
    """When ``new`` ran other code than ``old`` and ``old`` kept its uncommitted changes: the commands that give its
    code back (in a clean checkout, or after ``git stash``)."""
    if same_code(old.environment, new.environment):
        return None
    back = _code_back(old)
    return None if back is None else f"run {old.run_id}'s code: {back}"


def _code_back(run: RunRecord) -> str | None:
    """The commands that give a run's code back where it kept its uncommitted changes (code.patch), else None."""
    commit = run.environment.get("git_commit") or ""
    if run.path is None or not commit.endswith("-dirty") or not (patch := run.path / PATCH_FILE).is_file():
        return None
    return f"git checkout {commit.removesuffix('-dirty')} && git apply {paths.shown(patch)}"


def same_code(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Whether two runs' environments name the same code: the same sha256 of the code itself where both records have
    one (with or without git; commits that change no code are the same code). Else, as older records say it: one
    commit, and no uncommitted changes or the same ones (the sha256 of their code.patch; a record older than
    code.patch cannot say, so its changes count as other)."""
    if before.get("code_sha256") and after.get("code_sha256"):
        return bool(before["code_sha256"] == after["code_sha256"])
    commit = before.get("git_commit")
    if not commit or commit != after.get("git_commit"):
        return False
    return not commit.endswith("-dirty") or before.get("code_patch") is not None and (
        before.get("code_patch") == after.get("code_patch"))


def _code(env: dict[str, Any]) -> str:
    commit = env.get("git_commit")
    if not commit:  # no git: the code's own sha256 names it
        return f"code sha256 {env['code_sha256'][:10]}" if env.get("code_sha256") else "unknown"
    if not commit.endswith("-dirty"):
        return commit[:10]
    patch = env.get("code_patch")
    return commit[:10] + " with uncommitted changes" + (f" ({PATCH_FILE} {patch[:8]})" if patch else "")


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "none"
    return "unknown" if value is None else str(value)
