"""Compute resources: how many CPU threads a model may use, and which process of a ``torchrun`` job this is.

Threads: all cores, unless ``KIT_THREADS`` says otherwise (the tuning layer sets it so K parallel workers share the
cores instead of each grabbing all of them); under torchrun the cores are shared by the local processes.

Processes: ``torchrun --nproc_per_node=N scripts/train.py ...`` starts N copies; each learns its rank from the
environment. Only rank 0 writes (cache, folds, run, submission); the others wait for it where they would race, and
train on their shard. torch is imported only when there is more than one process.
"""

import atexit
import contextlib
import functools
import os
import re
import sys
from pathlib import Path

from common.errors import UsageError

# CPU features that change which kernels (and so which last digits) a run computes with.
NUMERIC_CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def world() -> tuple[int, int]:
    """(rank, number of processes) of this process; (0, 1) when not started by torchrun."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def env_int(name: str, default: int, minimum: int = 1) -> int:
    """A whole-number setting from the environment; a typo in it is one usage line naming it, not a failure that
    blames whatever read it first (a model's params)."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        number = minimum - 1
    if number < minimum:
        raise UsageError(f"{name} must be a whole number of at least {minimum}, not {value!r}; fix or unset it")
    return number


# Whole-number settings read from the environment (each at least 1): checked when a command starts.
ENV_INTS = ("KIT_THREADS", "KIT_HEARTBEAT_SECONDS")


def check_settings() -> None:
    """Refuse a typo in a setting before any work, not when the first model (or tuning storage) reads it."""
    from common.paths import PATH_SETTINGS, without_pasted_space

    for name in ENV_INTS:
        env_int(name, 1)
    for name in PATH_SETTINGS:
        value = os.environ.get(name, "")
        if (trimmed := without_pasted_space(value)) is not None:
            raise UsageError(f"{name} is '{value}': a space begins or ends it, which would make it another folder; "
                             f"did you mean '{trimmed}'?")


@functools.cache
def usable_cores() -> int:
    """The cores this process may run on: fewer than the machine has under ``taskset``, a container's CPU limit
    (``docker --cpus``, a Kubernetes pod's cgroup quota) or a cpuset - where ``os.cpu_count()`` still says the
    host's 64, and LightGBM or torch started one thread per host core on a quota of 2 (joblib's count, which reads
    the affinity and the cgroup quotas)."""
    from joblib import cpu_count

    return max(1, min(os.cpu_count() or 1, cpu_count()))


def n_threads() -> int:
    """KIT_THREADS, else every core this process's share of a torchrun job has."""
    return env_int("KIT_THREADS", 0) or max(1, usable_cores() // env_int("LOCAL_WORLD_SIZE", 1))


def reset_peak_memory() -> None:
    """Count this process's peak memory afresh from here (Linux: ``/proc/self/clear_refs``), so that a run's record
    holds its own peak, not that of an earlier run of the same command; elsewhere the count goes on from the start."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_memory_bytes() -> int | None:
    """This process's peak resident memory since ``reset_peak_memory`` (Linux: VmHWM), else since it started
    (getrusage); None where neither says."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux


@functools.cache
def cpu_flags() -> tuple[str, ...]:
    """The ``NUMERIC_CPU_FLAGS`` this CPU has (Linux; empty where /proc/cpuinfo cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ()
    return tuple(flag for flag in NUMERIC_CPU_FLAGS if re.search(rf"\b{flag}\b", text))


def native_bf16() -> bool:
    """bfloat16 matrix products in hardware (AVX-512 BF16 or AMX): autocast to bfloat16 then halves CPU time."""
    return bool({"avx512_bf16", "amx_bf16"} & set(cpu_flags()))


def init_distributed() -> str | None:
    """Join the torchrun job's process group (NCCL on GPUs, gloo on CPUs); the backend, or None when alone."""
    if world()[1] <= 1:
        return None
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        atexit.register(lambda: dist.is_initialized() and dist.destroy_process_group())
    return dist.get_backend()


def barrier() -> None:
    """Wait until every process of the job gets here (nothing to wait for when alone)."""
    if init_distributed() is not None:
        import torch.distributed as dist

        dist.barrier()
