"""Choosing the device and the numeric precision."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from charnext.config import DeviceName, Precision
from charnext.errors import DeviceError
from charnext.modeling.cpuload import IDLE_SAMPLE_SECONDS, IdleSample


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` picks CUDA, then MPS, then the CPU; an explicit device must be available."""
    name = DeviceName(name).value
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceError("device cuda (--device cuda) was asked for, but this torch sees no CUDA GPU")
    if name == "mps" and not torch.backends.mps.is_available():
        raise DeviceError("device mps (--device mps) was asked for; this machine has no usable MPS device")
    return torch.device(name)


def cpu_has_fast_bf16() -> bool:
    """True where the CPU computes bfloat16 natively (AVX512-BF16 or AMX), so autocast pays."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " amx_bf16" in flags or " avx512_bf16" in flags


def resolve_precision(name: str, device: torch.device, cell: str = "lstm") -> str:
    """`auto` picks bf16 where the device runs this cell fast in it, else fp32.

    Measured on a CPU with AMX (README, "Training on real text"): under bf16 autocast the
    LSTM trains 1.4-2.5x faster and reaches a lower loss in a fixed time, while GRU and
    basic RNN run slower than in fp32 (PyTorch's CPU bf16 kernels cover the LSTM only).
    """
    name = Precision(name).value
    if name != "auto":
        if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise DeviceError("this GPU does not support bfloat16; use precision fp32 (--precision fp32)")
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        return "bf16" if cpu_has_fast_bf16() and str(getattr(cell, "value", cell)) == "lstm" else "fp32"
    return "fp32"


def autocast(device: torch.device, precision: str):
    """The autocast context for a forward pass at `precision`."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def idle_cpus(seconds: float = IDLE_SAMPLE_SECONDS) -> float | None:
    """How many of the CPUs this process may run on were idle over `seconds` (Linux; else None)."""
    return IdleSample().idle(seconds)


def default_threads(sample: IdleSample | None = None) -> int:
    """Threads for torch on the CPU: torch's own choice (one a core), fewer when other processes
    keep cores busy. A thread on a busy core makes every step wait for it (OpenMP threads meet
    at each operation), which on a 2-core machine beside one busy process cost 3-5x."""
    if os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()  # the user's choice
    idle = sample.idle() if sample is not None else idle_cpus()
    if idle is None:
        return torch.get_num_threads()
    return max(1, min(torch.get_num_threads(), int(idle + 0.5)))


def configure_threads(threads: int | None = None, sample: IdleSample | None = None) -> int:
    """Set torch's CPU threads: `threads`, or `default_threads()` (from `sample`, an idle-CPU
    sample started earlier, if given); returns the number set."""
    from charnext.errors import ConfigError

    if threads is not None and threads < 1:
        raise ConfigError(f"threads must be at least 1, not {threads}")
    n = threads or default_threads(sample)
    torch.set_num_threads(n)
    return n
