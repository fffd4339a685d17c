"""Several processes, one run: the torch.distributed process group, set up from torchrun's env.

`torchrun --nproc-per-node=N -m charnext train ...` starts N copies of the command with
RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT set. `process_group()` joins them
into one group (gloo for CPU tensors, NCCL for CUDA tensors); the Trainer then reads its rank
and world size from the group, wraps the model in DistributedDataParallel and trains on its
share of each global batch. Without those variables (or with WORLD_SIZE=1) nothing happens and
the run is an ordinary single process.
"""

from __future__ import annotations

import datetime
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from charnext.config import DeviceName
from charnext.errors import DeviceError, DistributedError
from charnext.inference.scoring import Sums
from charnext.modeling.device import resolve_device

DEFAULT_TIMEOUT = 600.0  # seconds a process waits for the others in a collective before failing


@dataclass(frozen=True)
class Processes:
    """Where this process stands in its run."""

    rank: int = 0  # this process, 0..world-1 over all machines; 0 writes checkpoints and output
    world: int = 1  # processes in the run
    local_rank: int = 0  # this process on its machine: the GPU it uses

    @property
    def main(self) -> bool:
        """True for the process that writes checkpoints and output (rank 0)."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise DeviceError(f"environment variable {name}={value!r} is not a whole number") from None


def from_env() -> Processes:
    """This process's place as torchrun's environment describes it (a single process without)."""
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return Processes()
    return Processes(_env_int("RANK", 0), world, _env_int("LOCAL_RANK", 0))


def init_from_env(device: str = "auto", timeout: float = DEFAULT_TIMEOUT) -> Processes:
    """Join the process group when started by torchrun with WORLD_SIZE > 1; else do nothing.

    CPU tensors go through gloo and, where CUDA is available, CUDA tensors through NCCL (one
    group serves both). A collective that waits more than `timeout` seconds fails, so a process
    that hangs cannot stall the others forever.
    """
    procs = from_env()
    if procs.world == 1:
        return procs
    if not torch.distributed.is_available():
        raise DeviceError("this torch build has no torch.distributed; multi-process training needs it")
    if torch.distributed.is_initialized():
        return Processes(torch.distributed.get_rank(), torch.distributed.get_world_size(), procs.local_rank)
    process_device(device, procs.world)  # refuse an unusable device before waiting for the others
    cuda = torch.cuda.is_available() and DeviceName(device) in (DeviceName.auto, DeviceName.cuda)
    if cuda:
        torch.cuda.set_device(procs.local_rank)
    backend = "cpu:gloo,cuda:nccl" if cuda else "gloo"
    try:
        torch.distributed.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout))
    except (torch.distributed.DistError, RuntimeError, ValueError) as e:
        raise DistributedError(f"cannot join the other processes: {_first_line(e)}") from None
    return Processes(torch.distributed.get_rank(), torch.distributed.get_world_size(), procs.local_rank)


def process_device(name: str, world: int = 1) -> torch.device:
    """The device this process trains on: `resolve_device(name)`, and among `world` processes
    the GPU of this process's LOCAL_RANK; there `auto` falls back to the CPU instead of MPS."""
    if world == 1:
        return resolve_device(name)
    local_rank = _env_int("LOCAL_RANK", 0)
    if DeviceName(name) is DeviceName.mps:
        raise DeviceError("multi-process training runs on CPUs (gloo) or CUDA GPUs (NCCL), not on MPS")
    device = resolve_device(name)
    if device.type == "mps":  # auto on a Mac: gloo cannot move MPS tensors
        return torch.device("cpu")
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise DeviceError(
                f"process {local_rank} on this machine has no GPU of its own: "
                f"{torch.cuda.device_count()} GPUs; use --nproc-per-node={torch.cuda.device_count()}"
            )
        return torch.device("cuda", local_rank)
    return device


def rank_world() -> tuple[int, int]:
    """(rank, world size) of this process in the joined group, else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def wrap(model: torch.nn.Module, device: torch.device, world: int) -> torch.nn.Module:
    """The model as the training step calls it: DistributedDataParallel among several processes."""
    if world == 1:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def agree(elapsed: float, stop: bool, world: int) -> tuple[float, bool]:
    """(elapsed, stop requested) as every process sees them (the maximum), so that all stop at
    the same step."""
    if world == 1:
        return elapsed, stop
    flags = torch.tensor([elapsed, float(stop)], dtype=torch.float64)
    torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
    return float(flags[0]), bool(flags[1])


def all_sum(value: torch.Tensor, world: int) -> torch.Tensor:
    """The sum of `value` over all processes (a copy; `value` itself is unchanged)."""
    total = value.detach().clone().reshape(-1)
    if world > 1:
        torch.distributed.all_reduce(total)
    return total


def weighted_mean(values: list[float], weight: float, world: int) -> list[float]:
    """Each of `values` averaged over the processes, each process's figure weighted by `weight`."""
    if world == 1:
        return list(values)
    sums = torch.tensor([v * weight for v in values] + [weight], dtype=torch.float64)
    torch.distributed.all_reduce(sums)
    return [float(s / sums[-1]) for s in sums[:-1]]


def merge_sums(sums: Sums, world: int) -> Sums:
    """One check's sums from every process's share of its windows (added up, so that every
    process gets the same loss and standard error)."""
    if world == 1:
        return sums
    total = sums.to_tensor()
    torch.distributed.all_reduce(total)
    return Sums.from_tensor(total)


def gather_rows(state: torch.Tensor, world: int) -> torch.Tensor:
    """Every process's rows of a (layers, rows, hidden) state, in rank order (dimension 1)."""
    if world == 1:
        return state
    gathered = [torch.zeros_like(state) for _ in range(world)]
    torch.distributed.all_gather(gathered, state.contiguous())
    return torch.cat(gathered, dim=1)


def destroy() -> None:
    """Leave the process group, if this process joined one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


@contextmanager
def process_group(device: str = "auto", timeout: float = DEFAULT_TIMEOUT) -> Iterator[Processes]:
    """`init_from_env` for the duration of a block, then `destroy`; a collective that fails
    because another process died or timed out becomes a one-line DistributedError."""
    procs = init_from_env(device, timeout)
    try:
        yield procs
        if procs.world > 1:
            # leave together: a process that left while rank 0 still wrote its checkpoint and
            # summary died on exit in one two-process run of four or five (gloo: "terminate
            # called without an active exception", SIGABRT), and torchrun failed the run
            torch.distributed.barrier()
    except RuntimeError as e:  # DistError is one; gloo reports a lost peer as a plain RuntimeError
        if procs.world == 1 or not _communication_failed(e):
            raise
        raise DistributedError(
            f"process {procs.rank} of {procs.world} lost the others (one failed, was killed or "
            f"stopped answering for {timeout:.0f}s): {_first_line(e)}"
        ) from None
    finally:
        destroy()


def _communication_failed(e: RuntimeError) -> bool:
    """Whether an error comes from talking to the other processes (not from a bug here)."""
    return isinstance(e, torch.distributed.DistError) or "gloo" in str(e).lower()


def _first_line(e: BaseException) -> str:
    """The gist of an error: its first sentence, without gloo's `[source.cc:123]` prefix."""
    text = str(e).strip()
    line = text.splitlines()[0] if text else type(e).__name__
    line = re.sub(r"^\[[^\]]*\.(cc|cpp|h|hpp):\d+\]\s*", "", line)
    return line.split(". ")[0]
