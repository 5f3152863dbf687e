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

Each function performs the official operations in the official order (the same matrix
products, views, contiguous copies and reductions), so that values and gradients agree with
taoxugit/AttnGAN bitwise on the same device (tests/test_parity_attngan.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _cosine(a: Tensor, b: Tensor, eps: float = 1e-8) -> Tensor:
    """cosine_similarity (losses.py:11-17) of rows (M, D) -> (M,): clamped norm product."""
    w12 = torch.sum(a * b, 1)
    w1 = torch.norm(a, 2, 1)
    w2 = torch.norm(b, 2, 1)
    return w12 / (w1 * w2).clamp(min=eps)


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
    return F.cross_entropy(scores, labels), F.cross_entropy(scores.transpose(0, 1), labels)


def sentence_loss(
    image_code: Tensor,  # (N, D) global image features
    sentence: Tensor,  # (N, D) sentence features
    class_ids: Tensor | None = None,  # (N,) or None: no masking
    gamma3: float = 10.0,
    eps: float = 1e-8,
) -> tuple[Tensor, Tensor]:
    """(L_s0: image -> caption, L_s1: caption -> image), as sent_loss (losses.py:20-58)."""
    cnn, rnn = image_code.float().unsqueeze(0), sentence.float().unsqueeze(0)  # (1, N, D)
    cnn_norm = torch.norm(cnn, 2, dim=2, keepdim=True)
    rnn_norm = torch.norm(rnn, 2, dim=2, keepdim=True)
    scores = torch.bmm(cnn, rnn.transpose(1, 2))
    norm = torch.bmm(cnn_norm, rnn_norm.transpose(1, 2))
    scores = (scores / norm.clamp(min=eps) * gamma3)[0]  # (N images, N captions)
    return _two_way(scores, _class_mask(class_ids, len(scores), scores.device))


def word_attention(words: Tensor, regions: Tensor, gamma1: float) -> tuple[Tensor, Tensor]:
    """func_attention (GlobalAttention.py:29-69): words (B, D, T), regions (B, D, H, W) ->
    (region context per word (B, D, T), attention (B, T, H, W)): softmax over words, then over
    regions of gamma1 x."""
    b, d, t = words.shape
    ih, iw = regions.shape[2], regions.shape[3]
    source = ih * iw
    context = regions.reshape(b, -1, source)  # (B, D, L)
    context_t = torch.transpose(context, 1, 2).contiguous()
    attn = torch.bmm(context_t, words).view(b * source, t)
    attn = attn.softmax(dim=1)  # over words
    attn = torch.transpose(attn.view(b, source, t), 1, 2).contiguous().view(b * t, source)
    attn = (attn * gamma1).softmax(dim=1).view(b, t, source)  # over regions
    attn_t = torch.transpose(attn, 1, 2).contiguous()
    weighted = torch.bmm(context, attn_t)  # (B, D, T)
    return weighted, attn.view(b, -1, ih, iw)


def word_similarities(
    regions: Tensor,  # (N, D, H, W) region features
    words: Tensor,  # (N, D, T) word features (padding beyond each length ignored)
    lengths: Tensor,  # (N,) words per caption
    gamma1: float = 4.0,
    gamma2: float = 5.0,
) -> tuple[Tensor, list[Tensor]]:
    """(R(Q_i, D_j) (N images, N captions) before gamma3, attention maps of each caption j over
    its own image j (T_j, H, W)), as the loop of words_loss (losses.py:61-118)."""
    regions, words = regions.float(), words.float()
    n = regions.shape[0]
    columns, maps = [], []
    for j in range(n):
        t = int(lengths[j])
        word = words[j, :, :t].unsqueeze(0).contiguous().repeat(n, 1, 1)  # caption j, N times
        weighted, attn = word_attention(word, regions, gamma1)
        maps.append(attn[j])
        word = word.transpose(1, 2).contiguous().view(n * t, -1)
        weighted = weighted.transpose(1, 2).contiguous().view(n * t, -1)
        sim = _cosine(word, weighted).view(n, t)
        sim = sim.mul(gamma2).exp().sum(dim=1, keepdim=True)
        columns.append(torch.log(sim))
    return torch.cat(columns, 1), maps


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
    """KL_loss of conditioning augmentation: mean of -0.5 (1 + logvar - mu^2 - exp(logvar)),
    in the official order: mu^2 + exp(logvar), negated, + 1, + logvar, mean, x -0.5."""
    mu, logvar = mu.float(), logvar.float()
    element = mu.pow(2).add(logvar.exp()).mul(-1).add(1).add(logvar)
    return torch.mean(element).mul(-0.5)
