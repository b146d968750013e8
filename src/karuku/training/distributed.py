"""Data parallelism under `torchrun` (DDP over gloo on CPU); plain single process otherwise."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch.distributed as dist


@dataclass(frozen=True)
class World:
    """This process's rank and the number of processes (1 without torchrun)."""

    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def world_from_env() -> World:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return World(dist.get_rank(), dist.get_world_size())


def barrier(world: World) -> None:
    """Wait for every process (a no-op in one process)."""
    if world.size > 1:
        dist.barrier()


def finish() -> bool:
    """After a job's training: leave the process group (under torchrun). True on the process that writes results."""
    if not (dist.is_available() and dist.is_initialized()):
        return True
    rank = dist.get_rank()
    dist.destroy_process_group()
    return rank == 0
