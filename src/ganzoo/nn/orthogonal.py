"""BigGAN's orthogonal regularisation (Brock et al. 2019, Sec. 3.1).

The paper's penalty on a weight W (each row one filter, flattened to (out, fan_in)) drops the
diagonal of the classic ||W W^T - I||^2, so only the angles between filters are penalised, not
their norms:  R(W) = ||W W^T * (1 - I)||_F^2  (times the strength beta; paper beta = 1e-4; the
paper writes W^T W, with filters as columns).

The official code (ajbrock/BigGAN-PyTorch utils.py `ortho`, called in train_fns.py after the
accumulated backward and before G.optim.step) never forms the penalty: it adds the gradient
2 (W W^T * (1 - I)) W, times beta, to each parameter with at least two dimensions, skipping
G's shared class embedding ("Don't ortho reg shared, it makes no sense"). That is half the
gradient of R (dR/dW = 4 (W W^T * (1 - I)) W), i.e. the official code applies beta / 2 in the
paper's notation. `add_orthogonal_gradient` does what the code does; `orthogonal_penalty` is R,
for logging and tests.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn


def _off_diagonal_gram(w: Tensor) -> Tensor:
    """W W^T with a zero diagonal, for W flattened to (out, fan_in): (out, out)."""
    gram = w @ w.t()
    return gram * (1.0 - torch.eye(w.shape[0], device=w.device, dtype=w.dtype))


def orthogonal_penalty(weight: Tensor) -> Tensor:
    """R(W) = ||W W^T * (1 - I)||_F^2 of one weight (out, ...) flattened to (out, fan_in)."""
    w = weight.reshape(weight.shape[0], -1)
    return _off_diagonal_gram(w).pow(2).sum()


def orthogonal_gradient(weight: Tensor) -> Tensor:
    """The official code's step direction 2 (W W^T * (1 - I)) W = dR/dW / 2, shaped like W."""
    w = weight.reshape(weight.shape[0], -1)
    return (2.0 * _off_diagonal_gram(w) @ w).view_as(weight)


@torch.no_grad()
def add_orthogonal_gradient(
    params: Iterable[nn.Parameter],  # parameters of G (BigGAN: all but the shared embedding)
    strength: float,  # beta (BigGAN paper 1e-4; the released models 0, i.e. off)
) -> None:
    """param.grad += strength * orthogonal_gradient(param) for params with >= 2 dimensions.

    Call after the (accumulated) backward and before the optimiser step. Parameters without a
    gradient get one (the regulariser alone).
    """
    for p in params:
        if p.ndim < 2:
            continue
        step = strength * orthogonal_gradient(p.detach().float()).to(p.dtype)
        if p.grad is None:
            p.grad = step
        else:
            p.grad.add_(step)
