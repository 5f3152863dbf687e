"""Gradient averaging for data-parallel GAN training (`trainer=ddp`, ganzoo.cli.strategy).

Lightning's DDPStrategy wraps the LightningModule in torch's DistributedDataParallel, whose
reducer expects every parameter that requires a gradient to receive one in each backward.
A GAN step does not: the D phase leaves G without gradients (its output is detached) and the
G phase sends gradients into D that are then thrown away. Plain `ddp` stops with "Expected to
have finished reduction"; `ddp_find_unused_parameters_true` works but all-reduces D's gradients
in every G phase and walks the autograd graph each step.

`ganzoo.cli.strategy.GANDDPStrategy` keeps Lightning's process launching, process group,
rank-aware logging and checkpointing, and leaves the module unwrapped: parameters and buffers
are broadcast from rank 0 once at start-up, and GANTask averages the gradients of the network
a phase steps, and only those, right after its backward (`average_gradients`), before
unscaling, clipping and the step.
Every rank then applies the same update to the same weights, so G, D, the EMA copy and any
state computed from all-reduced statistics (ADA's p) stay equal across ranks.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


def distributed_world() -> int:
    """Number of processes in the default group (1 when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        return int(dist.get_world_size())
    return 1


def sync_module_states(module: nn.Module) -> None:
    """Broadcast every parameter and buffer from rank 0 (what DDP does when it wraps)."""
    if distributed_world() == 1:
        return
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=0)


def average_gradients(params: Iterable[nn.Parameter], bucket_mb: float = 25.0) -> None:
    """All-reduce the gradients of `params` to their mean over the processes, in buckets.

    Parameters without a gradient on this rank take part with zeros, so every rank issues the
    same collectives in the same order (a rank whose phase skipped a branch cannot hang the
    others). Non-finite values spread to every rank, so a GradScaler skips the step everywhere.
    """
    world = distributed_world()
    if world == 1:
        return
    params = [p for p in params if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    limit = int(bucket_mb * 2**20)
    bucket: list[torch.Tensor] = []
    size = 0
    for p in params:
        assert p.grad is not None
        bucket.append(p.grad)
        size += p.grad.numel() * p.grad.element_size()
        if size >= limit:
            _reduce_bucket(bucket, world)
            bucket, size = [], 0
    if bucket:
        _reduce_bucket(bucket, world)


def _reduce_bucket(grads: list[torch.Tensor], world: int) -> None:
    by_dtype: dict[Any, list[torch.Tensor]] = {}
    for g in grads:
        by_dtype.setdefault((g.dtype, g.device), []).append(g)
    for group in by_dtype.values():
        flat = torch.cat([g.reshape(-1) for g in group])
        dist.all_reduce(flat)
        flat /= world
        offset = 0
        for g in group:
            n = g.numel()
            g.copy_(flat[offset : offset + n].view_as(g))
            offset += n
