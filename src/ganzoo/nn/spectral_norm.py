"""Spectral norm (Miyato et al., ICLR 2018) in the order of torch.nn.utils.spectral_norm.

The official SPADE and pix2pixHD-style codes use PyTorch's hook-based
`torch.nn.utils.spectral_norm` (torch/nn/utils/spectral_norm.py). Per training-mode forward it
runs one power iteration, v first, then u:

    v <- normalize(W^T u),   u <- normalize(W v),   sigma = u . (W v),   weight = W / sigma

with W the weight reshaped to (out, -1), u, v starting as normalized N(0, 1) draws (no extra
iterations at registration). In eval mode it reuses the stored u, v. `spectral_norm` here keeps
that order, those draws and the hook's state names, so official state_dicts load 1:1:

    <name>_orig   the trainable raw weight (a parameter)
    <name>_u      (out,) buffer,  <name>_v  (in * k * k,) buffer

`torch.nn.utils.parametrizations.spectral_norm` instead updates u before v, runs 15 power
iterations at registration and names the keys `parametrizations.weight.original{,0}` — a
different training trajectory (issue 14 item 2). It stays available where a model chooses it
(`sn_impl: parametrizations`).

Differences from the torch hook, none of which change the numbers in float32:
- the computed `weight` attribute is detached after each forward, so a module can be deep-copied
  (EMA copies, checkpoint export) at any time, not only before its first forward;
- the power iteration and sigma run in float32 with autocast off (bf16/fp16 mixed precision);
  the divided weight is then cast by autocast as any weight would be.
"""

from __future__ import annotations

import contextlib
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrizations

SNImpl = Literal["hook", "parametrizations"]


class SpectralNormHook:
    """The forward pre-hook (and post-hook) that sets `module.<name>` = W / sigma."""

    def __init__(self, name: str, n_power_iterations: int, dim: int, eps: float) -> None:
        self.name = name
        self.n_power_iterations = n_power_iterations
        self.dim = dim
        self.eps = eps

    def matrix(self, weight: Tensor) -> Tensor:
        """The weight as (size(dim), -1), as torch's reshape_weight_to_matrix."""
        if self.dim != 0:
            weight = weight.permute(self.dim, *[d for d in range(weight.dim()) if d != self.dim])
        return weight.reshape(weight.size(0), -1)

    def compute_weight(self, module: nn.Module, do_power_iteration: bool) -> Tensor:
        """W / sigma; in training mode after n_power_iterations updates of u, v in place."""
        weight: Tensor = getattr(module, self.name + "_orig")
        u: Tensor = getattr(module, self.name + "_u")
        v: Tensor = getattr(module, self.name + "_v")
        device_type = weight.device.type
        no_autocast = (
            torch.autocast(device_type, enabled=False)
            if device_type in ("cuda", "cpu", "xpu", "mps")
            else contextlib.nullcontext()  # e.g. the meta device (shape probes)
        )
        with no_autocast:
            weight_mat = self.matrix(weight.float())  # the same tensor in float32
            u32, v32 = u.float(), v.float()  # the buffers themselves in float32
            if do_power_iteration:
                with torch.no_grad():
                    for _ in range(self.n_power_iterations):
                        # v first, then u: the torch-hook order (and the official codes').
                        v32 = F.normalize(torch.mv(weight_mat.t(), u32), 2, 0, self.eps, out=v32)
                        u32 = F.normalize(torch.mv(weight_mat, v32), 2, 0, self.eps, out=u32)
                    if u32 is not u:  # bf16 / fp16 buffers: store the float32 result
                        u.copy_(u32)
                        v.copy_(v32)
                    if self.n_power_iterations > 0:
                        # Clones, so that autograd's saved u, v are not the updated buffers.
                        u32 = u32.clone(memory_format=torch.contiguous_format)
                        v32 = v32.clone(memory_format=torch.contiguous_format)
            sigma = torch.dot(u32, torch.mv(weight_mat, v32))
            return (weight.float() / sigma).to(weight.dtype)

    def __call__(self, module: nn.Module, inputs: Any) -> None:
        setattr(module, self.name, self.compute_weight(module, module.training))

    def detach(self, module: nn.Module, inputs: Any, output: Any) -> None:
        """Post-forward: keep only a detached copy, so that the module deep-copies."""
        weight = getattr(module, self.name)
        if weight.grad_fn is not None:
            setattr(module, self.name, weight.detach())


def spectral_norm(
    module: nn.Module,  # conv / linear layer, changed in place
    name: str = "weight",  # its weight parameter
    n_power_iterations: int = 1,  # per training-mode forward (the official codes: 1)
    eps: float = 1e-12,  # normalize's eps (torch's default)
    dim: int | None = None,  # the output dim; None: 1 for ConvTranspose*, else 0
) -> nn.Module:
    """Register torch-hook-order spectral norm on `module.<name>`; returns the module.

    Draws u ~ N(0, 1) (size out), then v ~ N(0, 1) (size in * k * k), each normalized, from the
    global generator on the weight's device, as torch.nn.utils.spectral_norm does.
    """
    for hook in module._forward_pre_hooks.values():
        if isinstance(hook, SpectralNormHook) and hook.name == name:
            raise RuntimeError(f"spectral_norm is already registered on {name!r}")
    if dim is None:
        transposed = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
        dim = 1 if isinstance(module, transposed) else 0
    hook = SpectralNormHook(name, n_power_iterations, dim, eps)
    weight = module._parameters[name]
    if not isinstance(weight, nn.Parameter):
        raise ValueError(f"spectral_norm: {type(module).__name__} has no parameter {name!r}")
    with torch.no_grad():
        weight_mat = hook.matrix(weight)
        h, w = weight_mat.size()
        u = F.normalize(weight.new_empty(h).normal_(0, 1), dim=0, eps=eps)
        v = F.normalize(weight.new_empty(w).normal_(0, 1), dim=0, eps=eps)
    del module._parameters[name]
    module.register_parameter(name + "_orig", weight)
    setattr(module, name, weight.data)
    module.register_buffer(name + "_u", u)
    module.register_buffer(name + "_v", v)
    module.register_forward_pre_hook(hook)
    module.register_forward_hook(hook.detach)
    return module


def has_spectral_norm(module: nn.Module) -> bool:
    """True if `module` has spectral norm of either implementation."""
    if any(isinstance(h, SpectralNormHook) for h in module._forward_pre_hooks.values()):
        return True
    if nn.utils.parametrize.is_parametrized(module, "weight"):
        return True
    return any(
        type(h).__name__ == "SpectralNorm" for h in module._forward_pre_hooks.values()
    )  # torch.nn.utils.spectral_norm itself


def apply_spectral_norm(
    module: nn.Module,  # conv / linear layer, changed in place
    impl: SNImpl = "hook",  # 'hook': this module (official order); 'parametrizations': torch's
    n_power_iterations: int = 1,
    eps: float = 1e-12,
) -> nn.Module:
    """Spectral norm in the chosen implementation; returns the module (the same object for
    'hook', the parametrized module for 'parametrizations')."""
    if impl == "hook":
        return spectral_norm(module, n_power_iterations=n_power_iterations, eps=eps)
    if impl == "parametrizations":
        return parametrizations.spectral_norm(
            module, n_power_iterations=n_power_iterations, eps=eps
        )
    raise ValueError(f"sn_impl must be one of 'hook', 'parametrizations'; got {impl!r}")
