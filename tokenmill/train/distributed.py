"""Distributed training under torchrun: process group from the environment, DDP or FSDP2 wrapping, reductions.

One node, N processes:   torchrun --standalone --nproc_per_node=N -m tokenmill.cli train JOB.yaml
Several nodes (run on each, same rendezvous endpoint):
    torchrun --nnodes=2 --nproc_per_node=8 --rdzv_backend=c10d --rdzv_endpoint=HEAD_HOST:29500 \
             --rdzv_id=RUN_NAME -m tokenmill.cli train JOB.yaml [--resume]
Backend: NCCL on CUDA, gloo on CPU (tests run 2 CPU processes with gloo). Without torchrun (no WORLD_SIZE) the
trainer runs as a single process and nothing here touches torch.distributed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def pick_device(preference: str, local_rank: int = 0) -> torch.device:
    if preference == "cuda" or (preference == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            from tokenmill.config import ConfigError

            raise ConfigError("device: cuda requested but torch.cuda.is_available() is False")
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def init_distributed(device_preference: str = "auto") -> DistInfo:
    """Join the torchrun process group if WORLD_SIZE > 1; otherwise a single-process DistInfo."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_preference, local_rank)
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank, world, local_rank, device)


def wrap_model(model: nn.Module, info: DistInfo, strategy: str) -> nn.Module:
    """DDP (unused experts allowed: a micro-batch may route no token to some expert) or FSDP2 `fully_shard`."""
    if not info.enabled:
        return model
    if strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for layer in model.layers:
            fully_shard(layer)
        fully_shard(model)
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [info.device.index] if info.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=True)


def is_sharded(info: DistInfo, strategy: str) -> bool:
    return info.enabled and strategy == "fsdp"


def full_state_dicts(model: nn.Module, optimizer, info: DistInfo, strategy: str) -> tuple[dict, dict]:
    """(model, optimizer) state dicts, gathered whole on every rank under FSDP (a collective: call on all ranks).

    FSDP's optimizer state is keyed by parameter name; DDP's and a single process's by parameter index."""
    if not is_sharded(info, strategy):
        return model.state_dict(), optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=opts), get_optimizer_state_dict(model, optimizer, options=opts)


def load_optimizer_state(model: nn.Module, optimizer, state: dict, info: DistInfo, strategy: str) -> None:
    if not is_sharded(info, strategy):
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
