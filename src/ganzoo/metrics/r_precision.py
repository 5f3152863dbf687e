"""R-precision with the DAMSM encoders (Xu et al., CVPR 2018, Sec. 5.1; Table 1).

For each generated image, 100 candidate captions: its own and 99 drawn at random from the
other captions of the evaluated set. The candidates are ranked by the cosine similarity of the
DAMSM global image feature and sentence features; R-precision is the fraction of images whose
own caption ranks first (top-1, "R = 1"). The paper reports mean +- std over splits (10 runs of
the metric); `r_precision` returns both over `splits` equal chunks of the images.

Plugging it in: the metric needs the images of the EMA generator for real captions and the
DAMSM encoders the run was trained with. `RPrecision` is the torchmetrics Metric behind
metrics=rprecision, fed by AttnGANTask's "text_image_codes" view (ganzoo.tasks.attngan) during
training evaluations and ganzoo.evaluate.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from ganzoo.core.errors import ConfigError


def r_precision(
    image_codes: Tensor,  # (N, D) DAMSM global features of the generated images
    sentence_codes: Tensor,  # (N, D) sentence features of the captions they were made from
    candidates: int = 100,  # captions ranked per image: the true one + candidates - 1 others
    splits: int = 1,  # report mean and std over this many chunks of the images
    generator: torch.Generator | None = None,  # draws of the mismatched captions
) -> tuple[float, float]:
    """(mean, std) of top-1 retrieval of the true caption among `candidates`."""
    n = image_codes.shape[0]
    if sentence_codes.shape[0] != n:
        raise ConfigError(
            f"R-precision needs one caption per image; got {n} images, {sentence_codes.shape[0]}"
        )
    if n < candidates or candidates < 2:
        raise ConfigError(
            f"R-precision ranks {candidates} captions per image: it needs at least that many "
            f"images (got {n}) and candidates >= 2"
        )
    if splits < 1 or n < splits:
        raise ConfigError(f"R-precision splits must be in 1..{n}; got {splits}")
    img = F.normalize(image_codes.float(), dim=1)
    txt = F.normalize(sentence_codes.float(), dim=1)
    # candidates - 1 distinct other captions per image: a random permutation of the others
    keys = torch.rand(n, n, generator=generator)
    keys.fill_diagonal_(2.0)  # never the image's own caption among the mismatched ones
    others = keys.argsort(dim=1)[:, : candidates - 1].to(img.device)
    index = torch.cat([torch.arange(n, device=img.device)[:, None], others], dim=1)  # true first
    scores = (img[:, None, :] * txt[index]).sum(-1)  # (N, candidates)
    hits = (scores[:, 1:] < scores[:, :1]).all(dim=1).float()  # the true caption strictly first
    per_split = torch.stack([c.mean() for c in hits.chunk(splits)])
    std = float(per_split.std(unbiased=False)) if splits > 1 else 0.0
    return float(per_split.mean()), std


class RPrecision(Metric):
    """Accumulates (image feature, sentence feature) pairs; `compute` -> (mean, std).

    The pairs are states concatenated over updates and processes in rank order, so W processes
    with contiguous shares draw the same mismatched captions as one process (metrics=rprecision).
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True
    image_codes: list[Tensor]
    sentence_codes: list[Tensor]

    def __init__(
        self, candidates: int = 100, splits: int = 1, seed: int = 0, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if candidates < 2 or splits < 1:
            raise ConfigError(
                f"R-precision needs candidates >= 2 and splits >= 1; got {candidates}, {splits}"
            )
        self.candidates, self.splits, self.seed = candidates, splits, seed
        self.add_state("image_codes", default=[], dist_reduce_fx="cat")
        self.add_state("sentence_codes", default=[], dist_reduce_fx="cat")

    def update(self, image_codes: Tensor, sentence_codes: Tensor) -> None:
        self.image_codes.append(image_codes.detach().float())
        self.sentence_codes.append(sentence_codes.detach().float())

    def compute(self) -> tuple[float, float]:
        g = torch.Generator().manual_seed(self.seed)
        images, sentences = (
            dim_zero_cat(s) if isinstance(s, list) else s
            for s in (self.image_codes, self.sentence_codes)
        )
        return r_precision(images.cpu(), sentences.cpu(), self.candidates, self.splits, g)
