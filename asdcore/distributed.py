"""Data-parallel training: which processes take part, launching them, and the collectives that losses use.

A training with ``devices: N`` runs as N processes. ``asdcore run`` starts them itself (:func:`spawn`);
under ``torchrun`` or ``srun`` the launcher has started them already (:func:`launched_world`), and every
process runs the same command. Losses that keep statistics of the batch (the dynamic AdaCos scale) call
:func:`gather` so that every process computes them over the global batch; outside a data-parallel
training it returns its input.
"""
from __future__ import annotations

import os
import socket
from collections.abc import Callable

import torch
import torch.distributed as dist

from .errors import AsdcoreError


def world_size() -> int:
    """Number of processes of the running data-parallel training (1 outside one)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank: of the running training, else the launcher's (``RANK``/``SLURM_PROCID``), else 0."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    environment = cluster_environment()
    return environment.global_rank() if environment is not None else 0


def is_main() -> bool:
    """Whether this process writes artifacts and logs (rank 0)."""
    return rank() == 0


def cluster_environment():
    """The Lightning Fabric cluster environment of a multi-process launch (``torchrun``, this module's
    :func:`spawn`, or ``srun`` with several tasks), or None for a single process."""
    from lightning_fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    if TorchElasticEnvironment.detect() and int(os.environ["WORLD_SIZE"]) > 1:
        return TorchElasticEnvironment()
    if SLURMEnvironment.detect() and int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        return SLURMEnvironment()
    return None


def launched_world() -> int:
    """How many processes a launcher started for this command (1 when none did)."""
    environment = cluster_environment()
    return environment.world_size() if environment is not None else 1


def nodes() -> int:
    """Number of nodes of the launch (``WORLD_SIZE / LOCAL_WORLD_SIZE`` or ``SLURM_NNODES``)."""
    if "LOCAL_WORLD_SIZE" in os.environ and "WORLD_SIZE" in os.environ:
        return max(1, int(os.environ["WORLD_SIZE"]) // int(os.environ["LOCAL_WORLD_SIZE"]))
    return int(os.environ.get("SLURM_NNODES", os.environ.get("SLURM_JOB_NUM_NODES", "1")))


def fabric(accelerator: str, precision: str = "32", ddp: bool = False, find_unused_parameters: bool = False):
    """A launched Lightning Fabric for this process: on one device, or as one process of the launch's
    data-parallel group (``ddp`` makes a group even of one process; ``find_unused_parameters`` for models
    whose steps may leave parameters without a gradient). The group's connection is made once per process
    and kept."""
    from lightning_fabric import Fabric
    from lightning_fabric.strategies import DDPStrategy

    environment = cluster_environment()
    if environment is None and not ddp:
        instance = Fabric(accelerator=accelerator, devices=1, precision=precision)
    else:
        count = nodes() if environment is not None else 1
        world = environment.world_size() if environment is not None else 1
        strategy = DDPStrategy(cluster_environment=environment, find_unused_parameters=find_unused_parameters,
                               process_group_backend="nccl" if accelerator == "cuda" else "gloo")
        instance = Fabric(accelerator=accelerator, devices=world // count, num_nodes=count, strategy=strategy,
                          precision=precision)
    instance.launch()
    return instance


def connect(accelerator: str) -> None:
    """Join the data-parallel group of the processes a launcher (``torchrun``, ``srun``) started, so that
    they can wait for each other before training (:func:`barrier`)."""
    if launched_world() > 1 and not (dist.is_available() and dist.is_initialized()):
        fabric(accelerator)


def leave() -> None:
    """Wait for every process of the group, then close it (a process that exits with a live group can
    abort the others)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every process of the group (nothing to wait for outside one)."""
    if world_size() > 1:
        dist.barrier()


def gather(tensor: torch.Tensor) -> torch.Tensor:
    """The tensors of every process concatenated along dim 0 in rank order (lengths may differ); the
    input itself outside a data-parallel training. Not differentiable: for statistics only."""
    if world_size() == 1:
        return tensor
    tensor = tensor.detach().contiguous()
    count = torch.tensor([len(tensor)], device=tensor.device)
    counts = [torch.zeros_like(count) for _ in range(world_size())]
    dist.all_gather(counts, count)
    longest = int(max(c.item() for c in counts))
    padded = tensor.new_zeros((longest, *tensor.shape[1:]))
    padded[: len(tensor)] = tensor
    parts = [torch.empty_like(padded) for _ in range(world_size())]
    dist.all_gather(parts, padded)
    return torch.cat([part[: int(c.item())] for part, c in zip(parts, counts)])


def spawn(function: Callable, args: tuple, processes: int) -> None:
    """Run ``function(*args)`` in ``processes`` new processes that form one data-parallel group on this
    host (the environment of ``torchrun --standalone``; on CUDA, rank k uses device k). Returns when all
    have finished; an error in any of them is raised here with its message."""
    import torch.multiprocessing as mp

    port = _free_port()
    context = mp.get_context("spawn")
    errors = context.SimpleQueue()
    try:
        mp.start_processes(_run_rank, args=(function, args, processes, port, errors), nprocs=processes,
                           start_method="spawn", join=True)
    except mp.ProcessRaisedException as exc:
        raise AsdcoreError(_first_error(errors) or f"a training process failed: {exc}") from None
    except mp.ProcessExitedException as exc:
        raise AsdcoreError(f"a training process ended with exit code {exc.exit_code} "
                           f"(killed, or out of memory); run again to resume from the last epoch") from None


def _run_rank(local_rank: int, function: Callable, args: tuple, processes: int, port: int, errors) -> None:
    os.environ.update({"RANK": str(local_rank), "LOCAL_RANK": str(local_rank), "GROUP_RANK": "0",
                       "LOCAL_WORLD_SIZE": str(processes), "WORLD_SIZE": str(processes),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "TORCHELASTIC_RUN_ID": f"asdcore-{port}"})
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    try:
        function(*args)
    except Exception as exc:
        errors.put(f"rank {local_rank}: {exc}" if not isinstance(exc, AsdcoreError) else str(exc))
        raise
    leave()


def _first_error(errors) -> str | None:
    return None if errors.empty() else errors.get()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

