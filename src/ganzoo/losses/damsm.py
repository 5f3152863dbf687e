"""DAMSM matching losses of AttnGAN (Xu et al., CVPR 2018, Sec. 3.2; taoxugit/AttnGAN
code/miscc/losses.py:14-133, code/GlobalAttention.py:20-57) and the CA KL term.

For a batch of N (image, caption) pairs:

- sentence loss: R(Q_i, D_j) = cosine(global image feature i, sentence feature j), scaled by
  gamma3 (10); L_s0 = cross-entropy over captions for each image, L_s1 over images for each
  caption, the true pair as the label.
- word loss: for caption j with T_j words e_t and image i's regions v_r, s = e^T v normalised by
  a softmax over words, then alpha = softmax over regions of gamma1 (4) s; c_t = sum_r alpha v_r;
  R(Q_i, D_j) = log(sum_t exp(gamma2 (5) cosine(c_t, e_t))), scaled by gamma3; L_w0 and L_w1
  as above.
- pairs whose images share a class (class_ids, when given) are masked out of the softmax,
  except the true pair (the official `masks`).
- KL of conditioning augmentation: mean over batch and dimensions of
  -0.5 (1 + logvar - mu^2 - exp(logvar)) (losses.py KL_loss; a mean, unlike SPADE's sum).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _cosine(a: Tensor, b: Tensor, eps: float = 1e-8) -> Tensor:
    """Cosine similarity along the last dim, as the official cosine_similarity (clamped norms)."""
    num = (a * b).sum(-1)
    return num / (a.norm(dim=-1) * b.norm(dim=-1)).clamp(min=eps)


def _class_mask(class_ids: Tensor | None, n: int, device: torch.device) -> Tensor | None:
    """(N, N) bool: True where images i and j share a class and i != j."""
    if class_ids is None:
        return None
    same = class_ids[:, None] == class_ids[None, :]
    return same & ~torch.eye(n, dtype=torch.bool, device=device)


def _two_way(scores: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """Cross-entropy of scores (N images, N captions) both ways; true pairs on the diagonal."""
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    labels = torch.arange(scores.shape[0], device=scores.device)
    return F.cross_entropy(scores, labels), F.cross_entropy(scores.t(), labels)


def sentence_loss(
    image_code: Tensor,  # (N, D) global image features
    sentence: Tensor,  # (N, D) sentence features
    class_ids: Tensor | None = None,  # (N,) or None: no masking
    gamma3: float = 10.0,
) -> tuple[Tensor, Tensor]:
    """(L_s0: image -> caption, L_s1: caption -> image)."""
    image_code, sentence = image_code.float(), sentence.float()
    scores = _cosine(image_code[:, None, :], sentence[None, :, :]) * gamma3  # (N img, N cap)
    return _two_way(scores, _class_mask(class_ids, len(scores), scores.device))


def word_attention(words: Tensor, regions: Tensor, gamma1: float) -> tuple[Tensor, Tensor]:
    """func_attention: words (B, D, T), regions (B, D, H, W) -> (region context per word
    (B, D, T), attention (B, T, H, W)): softmax over words, then over regions of gamma1 x."""
    b, d, t = words.shape
    context = regions.reshape(b, d, -1)  # (B, D, L)
    attn = torch.bmm(context.transpose(1, 2), words)  # (B, L, T)
    attn = attn.softmax(dim=2)  # over words
    attn = (attn.transpose(1, 2) * gamma1).softmax(dim=2)  # (B, T, L), over regions
    weighted = torch.bmm(context, attn.transpose(1, 2))  # (B, D, T)
    return weighted, attn.reshape(b, t, *regions.shape[2:])


def word_similarities(
    regions: Tensor,  # (N, D, H, W) region features
    words: Tensor,  # (N, D, T) word features (padding beyond each length ignored)
    lengths: Tensor,  # (N,) words per caption
    gamma1: float = 4.0,
    gamma2: float = 5.0,
) -> tuple[Tensor, list[Tensor]]:
    """(R(Q_i, D_j) (N images, N captions) before gamma3, attention maps of each caption j over
    its own image j (T_j, H, W))."""
    regions, words = regions.float(), words.float()
    n = regions.shape[0]
    columns, maps = [], []
    for j in range(n):
        t = int(lengths[j])
        word = words[j : j + 1, :, :t].expand(n, -1, -1)  # caption j against every image
        weighted, attn = word_attention(word, regions, gamma1)
        sim = _cosine(word.transpose(1, 2), weighted.transpose(1, 2))  # (N, T_j)
        columns.append(torch.log((sim * gamma2).exp().sum(dim=1)))
        maps.append(attn[j])
    return torch.stack(columns, dim=1), maps


def word_loss(
    regions: Tensor,
    words: Tensor,
    lengths: Tensor,
    class_ids: Tensor | None = None,
    gamma1: float = 4.0,
    gamma2: float = 5.0,
    gamma3: float = 10.0,
) -> tuple[Tensor, Tensor, list[Tensor]]:
    """(L_w0: image -> caption, L_w1: caption -> image, attention maps per caption)."""
    sims, maps = word_similarities(regions, words, lengths, gamma1, gamma2)
    loss0, loss1 = _two_way(sims * gamma3, _class_mask(class_ids, len(sims), sims.device))
    return loss0, loss1, maps


def ca_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL_loss of conditioning augmentation: mean of -0.5 (1 + logvar - mu^2 - exp(logvar))."""
    mu, logvar = mu.float(), logvar.float()
    return (-0.5 * (1.0 + logvar - mu.pow(2) - logvar.exp())).mean()
