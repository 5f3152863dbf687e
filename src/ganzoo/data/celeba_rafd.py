"""CelebA and RaFD together, for StarGAN's multi-dataset training: `data=celeba_rafd`.

StarGAN (Sec. 3.2, solver.py:392-407) trains one generator on both datasets with a
*mask vector*: the domain label is [CelebA attributes (c_dim), RaFD one-hot (c2_dim),
mask (2)], where the part of the other dataset is zeros and the mask is [1, 0] for a
CelebA image and [0, 1] for a RaFD image. This adapter yields exactly that:
`attributes` is the (c_dim + c2_dim) vector with the other dataset's part zero-padded,
and `domain_mask` the 2-vector.

Samples 0 .. len(celeba)-1 are CelebA, the rest RaFD (`groups`). With
`data.alternate_groups: true` (the default of data=celeba_rafd) the datamodule reads one
CelebA batch, then one RaFD batch, and so on, as the official solver (train_multi), and
StarGAN counts one iteration per pair of batches; with false, a shuffled stream mixes both
in every batch (each sample's loss still follows its mask).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torch
from torch import Tensor
from torch.utils.data import Dataset

from ganzoo.data.celeba import CelebA, Partition
from ganzoo.data.files import FileDataset, OnCorrupt, ResizeFilter, check_choice
from ganzoo.data.rafd import RaFD


class CelebARaFD(Dataset):
    """Both datasets, attributes padded and a domain mask per sample.

    Sample: image (3, H, W) float in [-1, 1]; attributes (c_dim + c2_dim,) float32 0/1;
    domain_mask (2,) float32, [1, 0] for CelebA and [0, 1] for RaFD.
    """

    name: ClassVar[str] = "celeba_rafd"
    provides: ClassVar[tuple[str, ...]] = ("image", "attributes", "domain_mask")
    splits: ClassVar[tuple[str, ...]] = ("train", "test")

    def __init__(
        self,
        celeba_root: str | Path,  # see ganzoo.data.celeba
        rafd_root: str | Path,  # see ganzoo.data.rafd
        split: str,  # "train" or "test" (both datasets)
        height: int,  # output height (StarGAN: 128)
        width: int,  # output width (StarGAN: 128)
        attributes: list[str],  # CelebA attribute names (StarGAN: c_dim 5)
        celeba_crop_size: int,  # StarGAN: 178
        rafd_crop_size: int,  # StarGAN: 256
        partition: Partition,  # CelebA split: "eval_partition" or "stargan"
        resize_filter: ResizeFilter,  # StarGAN: bilinear
        random_flip: bool,  # StarGAN: on
        on_corrupt: OnCorrupt,  # "fail" or "skip"
        cache_dir: str | Path | None,  # holds celeba/ and rafd/ caches; None: always decode
        seed: int,  # keys the augmentation draws
    ) -> None:
        check_choice("split for data=celeba_rafd", split, self.splits)
        sub = None if cache_dir is None else Path(cache_dir)
        self.celeba = CelebA(
            celeba_root,
            split,
            height,
            width,
            attributes,
            celeba_crop_size,
            partition,
            resize_filter,
            random_flip,
            on_corrupt,
            None if sub is None else sub / "celeba",
            seed,
        )
        self.rafd = RaFD(
            rafd_root,
            split,
            height,
            width,
            rafd_crop_size,
            resize_filter,
            random_flip,
            on_corrupt,
            None if sub is None else sub / "rafd",
            seed,
        )

    @property
    def num_attributes(self) -> int:
        return self.celeba.num_attributes + self.rafd.num_classes

    @property
    def skipped(self) -> int:
        return self.celeba.skipped + self.rafd.skipped

    def parts(self) -> tuple[FileDataset, ...]:
        """The file datasets inside (what `ganzoo.data.prepare` caches)."""
        return (self.celeba, self.rafd)

    @property
    def groups(self) -> tuple[int, int]:
        """(CelebA samples, RaFD samples): the consecutive index ranges of the two datasets
        (data.alternate_groups reads one dataset per batch, in turn)."""
        return (len(self.celeba), len(self.rafd))

    def set_stream_position(self, position: int) -> None:
        """Key the next read's augmentation on its training-stream position (both parts)."""
        self.celeba.set_stream_position(position)
        self.rafd.set_stream_position(position)

    def __len__(self) -> int:
        return len(self.celeba) + len(self.rafd)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        c_dim, c2_dim = self.celeba.num_attributes, self.rafd.num_classes
        if index < len(self.celeba):
            sample = self.celeba[index]
            attributes = torch.cat([sample["attributes"], torch.zeros(c2_dim)])
            mask = torch.tensor([1.0, 0.0])
        else:
            sample = self.rafd[index - len(self.celeba)]
            attributes = torch.cat([torch.zeros(c_dim), sample["attributes"]])
            mask = torch.tensor([0.0, 1.0])
        return {"image": sample["image"], "attributes": attributes, "domain_mask": mask}
