"""The formulas of the distribution metrics, on feature matrices (plain tensors, no state).

Conventions follow torch-fidelity 0.4 (toshas/torch-fidelity), whose numbers ganzoo's are tested
against: `fake` is what torch-fidelity calls input1 (generated), `real` input2; random subsets
and shuffles use ``numpy.random.RandomState(seed)`` drawn in the same order, so equal features
give equal numbers. Everything is computed in float64.

- FID, Heusel et al. 2017 (TTUR, bioinf-jku/TTUR fid.py): ||mu_r - mu_f||^2
  + tr(S_r) + tr(S_f) - 2 tr((S_r S_f)^(1/2)), covariances with ddof 1 (numpy.cov).
- KID, Binkowski et al. 2018 (MMD-GAN compute_scores.py): unbiased MMD^2 with the kernel
  k(x, y) = (x.y / d + 1)^3, mean and std over random subsets.
- IS, Salimans et al. 2016: exp(E_x KL(p(y|x) || p(y))) per split, mean and std over splits.
- Improved precision / recall, Kynkaanniemi et al. 2019: a sample is "in" the other set's
  manifold when it lies within the k-NN radius of one of its samples.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

_BLOCK = 1024  # rows per block of pairwise distances (memory: block x N float64)


def _as_double(features: Tensor, name: str) -> Tensor:
    if features.ndim != 2:
        raise ValueError(f"{name}: expected features (N, D), got shape {tuple(features.shape)}")
    return features.detach().to(torch.float64)


def gaussian_statistics(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean (D,) and covariance (D, D) with ddof 1 of features (N, D), in float64."""
    x = _as_double(features, "gaussian_statistics")
    if x.shape[0] < 2:
        raise ValueError(f"a covariance needs at least 2 samples, got {x.shape[0]}")
    mu = x.mean(0)
    centred = x - mu
    return mu, centred.T @ centred / (x.shape[0] - 1)


def _trace_sqrt_product(sigma1: Tensor, sigma2: Tensor) -> Tensor:
    """tr((S1 S2)^(1/2)) for symmetric PSD S1, S2, via the symmetric form
    tr((S1^(1/2) S2 S1^(1/2))^(1/2)): same eigenvalues, real arithmetic throughout."""
    eigenvalues, vectors = torch.linalg.eigh(sigma1)
    root1 = (vectors * eigenvalues.clamp_min(0).sqrt()) @ vectors.T  # S1^(1/2)
    middle = root1 @ sigma2 @ root1
    middle = (middle + middle.T) / 2  # symmetric up to rounding
    return torch.linalg.eigvalsh(middle).clamp_min(0).sqrt().sum()


def frechet_distance_from_statistics(
    mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor
) -> float:
    """Frechet distance between Gaussians N(mu1, sigma1) and N(mu2, sigma2)."""
    mu1, mu2, sigma1, sigma2 = (t.to(torch.float64) for t in (mu1, mu2, sigma1, sigma2))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"statistics differ in shape: {tuple(mu1.shape)} vs {tuple(mu2.shape)}")
    diff = mu1 - mu2
    trace = sigma1.trace() + sigma2.trace() - 2 * _trace_sqrt_product(sigma1, sigma2)
    return float(diff.dot(diff) + trace)


def frechet_distance(real: Tensor, fake: Tensor) -> float:
    """FID of two feature sets (N_r, D) and (N_f, D).

    With fewer samples than dimensions (a short run, a test) the covariances have low rank and
    tr((S_r S_f)^(1/2)) is computed exactly from the small matrix M = A_r A_f^T of the centred
    features: the non-zero eigenvalues of S_r S_f are the squared singular values of
    M / sqrt((N_r - 1)(N_f - 1)), so the trace is the nuclear norm of that matrix. Otherwise
    through the (D, D) covariances.
    """
    x_real, x_fake = _as_double(real, "FID real"), _as_double(fake, "FID fake")
    n_real, n_fake, dim = len(x_real), len(x_fake), x_real.shape[1]
    if min(n_real, n_fake) > dim:
        return frechet_distance_from_statistics(
            *gaussian_statistics(x_real), *gaussian_statistics(x_fake)
        )
    if min(n_real, n_fake) < 2 or x_fake.shape[1] != dim:
        raise ValueError(
            f"FID needs >= 2 samples of equal dimension, got {real.shape}, {fake.shape}"
        )
    a, b = x_real - x_real.mean(0), x_fake - x_fake.mean(0)  # centred (N, D)
    scale = (n_real - 1) * (n_fake - 1)
    cross = torch.linalg.svdvals(a @ b.T).sum() / scale**0.5
    diff = x_real.mean(0) - x_fake.mean(0)
    traces = a.square().sum() / (n_real - 1) + b.square().sum() / (n_fake - 1)
    return float(diff.dot(diff) + traces - 2 * cross)


def _mmd2_unbiased(k_xx: Tensor, k_xy: Tensor, k_yy: Tensor) -> float:
    """Unbiased MMD^2 from kernel matrices of two equal-size samples (m, m)."""
    m = k_xx.shape[0]
    within = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (
        m * (m - 1)
    )
    return float(within - 2 * k_xy.sum() / (m * m))


def kernel_inception_distance(
    real: Tensor,
    fake: Tensor,
    subsets: int = 100,  # torch-fidelity kid_subsets
    subset_size: int = 1000,  # kid_subset_size; must not exceed either set
    seed: int = 2020,  # numpy RandomState seed (torch-fidelity rng_seed)
    degree: int = 3,  # polynomial kernel degree
    coef0: float = 1.0,  # polynomial kernel offset; gamma is 1 / D
) -> tuple[float, float]:
    """KID mean and std over `subsets` random subsets (fake drawn first, as torch-fidelity)."""
    x_fake, x_real = _as_double(fake, "KID fake"), _as_double(real, "KID real")
    if min(len(x_fake), len(x_real)) < subset_size or subset_size < 2:
        raise ValueError(
            f"KID subset_size {subset_size} must be >= 2 and at most the number of samples "
            f"(fake {len(x_fake)}, real {len(x_real)})"
        )
    gamma = 1.0 / x_fake.shape[1]
    rng = np.random.RandomState(seed)
    values = np.zeros(subsets)
    for i in range(subsets):
        f = x_fake[torch.from_numpy(rng.choice(len(x_fake), subset_size, replace=False))]
        r = x_real[torch.from_numpy(rng.choice(len(x_real), subset_size, replace=False))]
        kernel = lambda a, b: (a @ b.T * gamma + coef0) ** degree  # noqa: E731
        values[i] = _mmd2_unbiased(kernel(f, f), kernel(f, r), kernel(r, r))
    return float(values.mean()), float(values.std())


def inception_score(
    logits: Tensor,
    splits: int = 10,  # the original protocol's 10 splits
    seed: int | None = 2020,  # shuffle with RandomState(seed) before splitting; None: no shuffle
) -> tuple[float, float]:
    """IS mean and std over splits of class logits (N, C) of the generated images."""
    x = _as_double(logits, "inception_score")
    n = x.shape[0]
    if n < splits:
        raise ValueError(f"inception score: {n} samples for {splits} splits")
    if seed is not None:
        x = x[torch.from_numpy(np.random.RandomState(seed).permutation(n))]
    p, log_p = x.softmax(dim=1), x.log_softmax(dim=1)
    scores = []
    for i in range(splits):
        part = slice(i * n // splits, (i + 1) * n // splits)
        marginal = p[part].mean(dim=0, keepdim=True)  # p(y) over the split, (1, C)
        kl = (p[part] * (log_p[part] - marginal.log())).sum(dim=1)  # (n_split,)
        scores.append(float(kl.mean().exp()))
    return float(np.mean(scores)), float(np.std(scores))


def knn_radii(features: Tensor, k: int) -> Tensor:
    """Distance of each sample (N, D) to its k-th nearest neighbour in the same set (N,).

    The sample itself is its own 0-th neighbour (as torch-fidelity's kthvalue(k + 1))."""
    x = _as_double(features, "knn_radii")
    if len(x) <= k:
        raise ValueError(f"k-NN radii with k={k} need more than {k} samples, got {len(x)}")
    return torch.cat(
        [torch.cdist(part, x).kthvalue(k + 1, dim=1).values for part in x.split(_BLOCK)]
    )


def _inside_any_ball(points: Tensor, centres: Tensor, radii: Tensor) -> Tensor:
    """(N,) bool: whether each point lies within radius of at least one centre."""
    return torch.cat(
        [(torch.cdist(part, centres) <= radii).any(dim=1) for part in points.split(_BLOCK)]
    )


def precision_recall(real: Tensor, fake: Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision (fake inside the real manifold) and recall (real inside the fake one)."""
    x_real, x_fake = _as_double(real, "PR real"), _as_double(fake, "PR fake")
    precision = _inside_any_ball(x_fake, x_real, knn_radii(x_real, k)).double().mean()
    recall = _inside_any_ball(x_real, x_fake, knn_radii(x_fake, k)).double().mean()
    return float(precision), float(recall)
