"""torch.compile for a GAN's networks, with the passes it cannot differentiate twice kept eager.

`compile_network(net)` compiles the forward of net and of its direct submodules in place:
parameter names, state dicts and checkpoints stay as they are, and a task that calls a
submodule directly (StyleGAN2's G.mapping, G.synthesis) still runs compiled code.

The backward of a compiled graph (AOTAutograd) is not itself differentiable, so the passes a
penalty differentiates twice (R1, path length, WGAN-GP) run the plain forward, and so does
everything they call: inside `eager()` (GANTask.full_precision enters it) and whenever an input
is a leaf tensor that requires grad (a penalty's own input: R1's images, StarGAN's
interpolates). Random draws inside a compiled forward use the eager generator (inductor's
fallback_random), so a compiled run draws what the eager run draws. Compile after any deep copy
(the EMA generator is copied when the task is built and stays eager).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

_eager_depth = 0  # > 0 inside eager(): compiled modules run their plain forward


@contextmanager
def eager() -> Iterator[None]:
    """Compiled networks run their plain forward inside this context."""
    global _eager_depth
    _eager_depth += 1
    try:
        yield
    finally:
        _eager_depth -= 1


def _penalty_input(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """An input is a leaf that requires grad: a penalty will differentiate w.r.t. it."""
    values = (*args, *kwargs.values())
    return any(isinstance(v, Tensor) and v.requires_grad and v.is_leaf for v in values)


def compile_module(module: nn.Module) -> None:
    """Replace module.forward by a compiled one that falls back to eager (see above)."""
    plain = module.forward
    compiled = torch.compile(plain, options={"fallback_random": True})

    def forward(*args: Any, **kwargs: Any) -> Any:
        if _eager_depth or _penalty_input(args, kwargs):
            with eager():  # submodules called from here run eager too
                return plain(*args, **kwargs)
        return compiled(*args, **kwargs)

    module.forward = forward  # type: ignore[method-assign]


def compile_network(network: nn.Module) -> None:
    """Compile the forward of `network` and of each of its direct submodules that has
    parameters (a task may call those directly, as StyleGAN2 calls G.mapping and G.synthesis;
    called from the compiled network they are part of its graph). Compilation happens at the
    first call, so only what training calls is compiled."""
    for child in network.children():
        if isinstance(child, nn.ModuleList | nn.ModuleDict):
            continue  # not callable; their entries are part of the network's graph
        if any(True for _ in child.parameters()):
            compile_module(child)
    compile_module(network)
