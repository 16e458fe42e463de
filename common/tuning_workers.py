"""A study tuned by several local processes: each runs ``common.tuning.work`` on the same storage, and the command
fails, warns or stays quiet by how they ended.

Workers are spawned (not forked): a fork of a process that has run LightGBM or torch threads can hang in their
runtimes. A worker stopped by the main process (Ctrl-C, SIGTERM, SIGHUP) fails its running trial and ends quietly,
so the command's stop is one line, however many workers ran.
"""

import errno
import logging
import multiprocessing
import os
import signal
import time

from common.cli import READER_GONE
from common.compute import usable_cores
from common.errors import KitError

log = logging.getLogger(__name__)


def run_workers(workers: int, comp_ref: str, recipe: str, storage_url: str | None, n_trials: int | None,
                deadline: float | None, seed: int, n_folds: int, data_dir: str | None) -> None:
    """``workers`` processes on one study, the cores shared out among them; returns when all have ended."""
    threads = max(1, usable_cores() // workers)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker_main, args=(comp_ref, recipe, storage_url, n_trials, deadline, seed, n_folds,
                                                    data_dir, i, threads))
             for i in range(workers)]
    try:
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join()
    except BaseException:  # Ctrl-C or SIGTERM: stop the workers too, each fails its running trial cleanly
        stop_processes([proc for proc in procs if proc.pid is not None])  # a failed start leaves some unstarted
        raise
    check_workers([proc.exitcode or 0 for proc in procs])


def _stopped_by(exc: BaseException | None) -> bool:
    """Whether ``exc`` is an interrupt (SIGTERM's Terminated too) or was raised while handling one."""
    while exc is not None:
        if isinstance(exc, KeyboardInterrupt):
            return True
        exc = exc.__context__
    return False


def _worker_main(comp_ref: str, recipe: str, storage_url: str | None, n_trials: int | None,
                 deadline: float | None, seed: int, n_folds: int, data_dir: str | None, index: int,
                 threads: int) -> None:
    os.environ["KIT_THREADS"] = str(threads)
    from common.cli import handle_errors, setup_logging
    from common.competition import from_reference
    from common.tuning import work

    setup_logging()
    # Ctrl-C reaches every process of the terminal's group: the main process stops the workers (SIGTERM) and says so
    # in one line, instead of every worker saying it too.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def run() -> None:  # errors become one line and an exit code, as in the main process
        try:
            work(from_reference(comp_ref), recipe, storage_url, n_trials, deadline, seed, n_folds, data_dir, index)
        except BaseException as exc:
            if _stopped_by(exc):  # the main process stopped this worker: what the stop broke on its way out is
                raise SystemExit(143) from None  # not news (a trial it left running in Optuna's bookkeeping is
            raise  # failed and re-queued by the next command, as after kill -9)

    code = handle_errors(run)
    if code:
        raise SystemExit(code)


class WorkersFailed(KitError):
    """Every worker of a study stopped with an error: the command failed, with the workers' exit code."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def check_workers(codes: list[int]) -> None:
    """A warning when some workers failed (the others finished the work); an error, with their exit code, when all
    did: a command whose every worker failed (a full disk, the out-of-memory killer) must not exit 0."""
    bad = [code for code in codes if code != 0]
    if not bad:
        return
    exits, signals = [code for code in bad if code > 0], [signal.Signals(-code).name for code in bad if code < 0]
    ends = "; ".join(([f"exit code{'s' * (len(exits) > 1)} {', '.join(map(str, exits))}"] if exits else [])
                     + ([f"killed by {', '.join(signals)}"] if signals else []))
    if len(bad) < len(codes):
        log.warning("%d of %d workers stopped early (%s); the others finished the work", len(bad), len(codes), ends)
        return
    if set(bad) == {READER_GONE}:  # the output's reader left (| head): this process ends as quietly as they did
        raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))
    exit_codes = {128 - code if code < 0 else code for code in bad}
    oom = " (SIGKILL: the out-of-memory killer? fewer --workers need less memory)" if -signal.SIGKILL in bad else ""
    raise WorkersFailed(f"all {len(codes)} workers stopped ({ends}){oom}; the trials they finished stay in the "
                        "study, and the same command goes on from them", next(iter(exit_codes)) if len(exit_codes) == 1
                        else 1)


# How long stopped workers get to fail their trials cleanly: a trial's bookkeeping takes well under a second.
STOP_GRACE_SECONDS = 20.0


def stop_processes(procs: list, grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM each process, then SIGKILL those still there after ``grace`` seconds in all. A LightGBM fit sent
    SIGTERM can hang in its OpenMP runtime (seen on two hosts); without the kill, Python's exit would wait for that
    worker forever. A killed worker's trial stays running in the storage, and the next command fails and re-queues
    it, as after kill -9."""
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    deadline = time.monotonic() + grace
    for proc in procs:
        proc.join(timeout=max(0.0, deadline - time.monotonic()))
    stuck = [proc for proc in procs if proc.is_alive()]
    for proc in stuck:
        proc.kill()
        proc.join()
    if stuck:
        log.warning("%d worker(s) did not stop within %.0f s of SIGTERM and were killed; the next command re-queues "
                    "their trials", len(stuck), grace)
