"""One LightningDataModule for every dataset, with a resumable, rank-aware sample stream.

Training reads a single deterministic stream of sample indices: pass e over the
dataset is a permutation drawn from (seed, e), and global position p of the stream
is item p % len(dataset) of pass p // len(dataset). Rank r of a world of size W
takes positions r, r + W, r + 2W, ... so every rank reads its own shard and the
global batch is `batch_size * W`. A run of `steps` iterations is one Lightning
epoch of `steps` batches; resuming continues the stream where the checkpoint left
it, so N steps straight and N/2 + resume + N/2 see the same batches.

With `alternate_groups` (data=celeba_rafd: StarGAN's joint training), an adapter made of
consecutive groups (its `groups`: the length of each) is read one whole batch at a time from
each group in turn (batch b from group b % G), each group with its own stream as above; so
every batch holds one dataset, as the official solver's alternating CelebA and RaFD batches.

The loader hands each sample's stream position to the adapter (`PositionedDataset`), which keys
its random crops, flips and caption choices on (seed, item, position): a resumed run and a run
with another num_workers draw the very augmentations of a straight run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ganzoo.core.errors import ConfigError
from ganzoo.data.batch import Batch, collate


class StreamSampler(Sampler[int]):
    """Indices of one rank's share of the endless shuffled stream (see module docstring)."""

    def __init__(
        self,
        dataset_len: int,  # number of items in the dataset
        num_samples: int,  # samples this rank reads in the whole run (steps * batch_size)
        seed: int,  # seeds the permutation of every pass
        shuffle: bool = True,  # False: passes in dataset order
        rank: int = 0,  # this process's rank
        world_size: int = 1,  # number of processes
    ) -> None:
        self.dataset_len = dataset_len
        self.num_samples = num_samples
        self.seed = seed
        self.shuffle = shuffle
        self.rank = rank
        self.world_size = world_size
        self.start = 0  # samples of this rank already consumed (set on resume)
        self._perm_pass = -1
        self._perm = torch.arange(dataset_len)

    def _item(self, position: int) -> int:
        epoch, offset = divmod(position, self.dataset_len)
        if self.shuffle and epoch != self._perm_pass:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm = torch.randperm(self.dataset_len, generator=g)
            self._perm_pass = epoch
        return int(self._perm[offset]) if self.shuffle else offset

    def _at(self, k: int) -> int:
        """The item of this rank's k-th sample."""
        return self._item(k * self.world_size + self.rank)

    def __iter__(self) -> Iterator[int]:
        for k in range(self.start, self.num_samples):
            yield self._at(k)

    def keyed(self) -> Iterator[tuple[int, int]]:
        """(item, stream position) pairs: the position (k W + rank for this rank's k-th
        sample) is unique in the run and keys the sample's augmentation draws."""
        for k in range(self.start, self.num_samples):
            yield self._at(k), k * self.world_size + self.rank

    def __len__(self) -> int:
        # The whole run's length: Lightning counts batches from the restored progress,
        # and __iter__ starts at `start`, so both end together.
        return self.num_samples


class GroupedStreamSampler(StreamSampler):
    """Whole batches from one group at a time, the groups in turn (see module docstring)."""

    def __init__(
        self,
        group_lengths: tuple[int, ...],  # items per group; group g = the next len_g indices
        batch_size: int,  # per-process batch size (a batch never mixes groups)
        num_samples: int,  # samples this rank reads in the whole run (steps * batch_size)
        seed: int,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not group_lengths or min(group_lengths) < 1:
            raise ConfigError(f"every group needs items; got lengths {list(group_lengths)}")
        super().__init__(sum(group_lengths), num_samples, seed, shuffle, rank, world_size)
        self.group_lengths = tuple(group_lengths)
        self.batch_size = batch_size
        self.starts = [sum(group_lengths[:g]) for g in range(len(group_lengths))]
        self._perms: dict[tuple[int, int], torch.Tensor] = {}

    def _group_item(self, group: int, position: int) -> int:
        n = self.group_lengths[group]
        epoch, offset = divmod(position, n)
        if not self.shuffle:
            return self.starts[group] + offset
        key = (group, epoch)
        if key not in self._perms:
            self._perms = {k: v for k, v in self._perms.items() if k[0] != group}  # one per group
            seed = (self.seed * 1_000_003 + epoch) * 1_009 + group
            self._perms[key] = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        return self.starts[group] + int(self._perms[key][offset])

    def _at(self, k: int) -> int:
        groups = len(self.group_lengths)
        batch, j = divmod(k, self.batch_size)
        position = ((batch // groups) * self.batch_size + j) * self.world_size + self.rank
        return self._group_item(batch % groups, position)


class KeyedSampler(Sampler[tuple[int, int]]):
    """A StreamSampler's (item, stream position) pairs, for `PositionedDataset`."""

    def __init__(self, stream: StreamSampler) -> None:
        self.stream = stream

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return self.stream.keyed()

    def __len__(self) -> int:
        return len(self.stream)


class PositionedDataset(Dataset):
    """Reads item i for the key (i, stream position), first telling the adapter the position
    (`set_stream_position`, if it has one): its random crops, flips and caption choices are then
    a function of (seed, item, position), the same on resume and for any num_workers."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        index, position = key
        setter = getattr(self.dataset, "set_stream_position", None)
        if setter is not None:
            setter(position)
        return self.dataset[index]


class StreamLoader(DataLoader):
    """A DataLoader over a StreamSampler that Lightning saves and restores with the run."""

    def __init__(self, *args: Any, consumed: Callable[[], int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._consumed = consumed  # batches this rank has trained on so far

    def state_dict(self) -> dict[str, int]:
        return {"batches_consumed": self._consumed()}

    def load_state_dict(self, state: dict[str, int]) -> None:
        assert isinstance(self.sampler, KeyedSampler)
        self.sampler.stream.start = state["batches_consumed"] * int(self.batch_size or 1)


class GANDataModule(pl.LightningDataModule):
    """Builds the train stream and a fixed sample batch from one dataset adapter.

    `dataset` is a callable taking `split=` (a functools.partial of the adapter class,
    built by Hydra from `data.dataset`); the adapter class declares `provides`.
    """

    def __init__(
        self,
        name: str,  # the data config's name, used in messages
        dataset: Callable[..., Dataset],  # adapter factory: dataset(split="train") -> Dataset
        batch_size: int,  # per-process batch size
        num_workers: int,  # DataLoader worker processes
        seed: int,  # seeds the shuffling stream
        train_split: str,  # split used for training
        sample_split: str,  # split the fixed sample grid and evaluation read from
        steps: int,  # training iterations of the run (one batch each)
        resolution: int,  # image width in pixels
        aspect_ratio: float,  # width / height
        shuffle: bool = True,  # shuffle the training stream
        pin_memory: bool = False,  # page-locked host memory for faster host-to-GPU copies
        label_nc: int | None = None,  # semantic classes the config promises (checked)
        contain_dontcare_label: bool = False,  # one extra "dontcare" label id
        instance_maps: bool = False,  # the config promises instance_map
        num_classes: int | None = None,  # image-level classes promised (checked)
        num_attributes: int | None = None,  # attributes promised (checked)
        vocab_size: int | None = None,  # caption vocabulary promised (checked)
        root: str | None = None,  # dataset folder, for messages
        global_batch_size: int | None = None,  # if set: split across processes (must divide)
        alternate_groups: bool = False,  # one group per batch, in turn (adapter's `groups`)
        annotated: int | None = None,  # EditGAN: training images whose label maps it learns from
    ) -> None:
        super().__init__()
        self.global_batch_size = global_batch_size
        self.annotated = annotated  # read by model=editgan (data.annotated)
        if batch_size < 1 or steps < 1:
            raise ConfigError(f"data.batch_size ({batch_size}) and steps ({steps}) must be >= 1")
        self.name = name
        self.dataset_factory = dataset
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.train_split = train_split
        self.sample_split = sample_split
        self.steps = steps
        self.shuffle = shuffle
        self.pin_memory = pin_memory
        self.height = int(round(resolution / aspect_ratio))
        self.width = resolution
        self.promised = {
            "num_labels": None if label_nc is None else label_nc + int(contain_dontcare_label),
            "num_classes": num_classes,
            "num_attributes": num_attributes,
            "vocab_size": vocab_size,
        }
        self.instance_maps = instance_maps
        self.root = root
        self.alternate_groups = alternate_groups
        self._train: Dataset | None = None

    def setup(self, stage: str) -> None:
        """Split data.global_batch_size across the processes of the run (one-line error if not)."""
        if self.global_batch_size is None or self.trainer is None:
            return
        world = int(self.trainer.world_size)
        if self.global_batch_size % world:
            raise ConfigError(
                f"data.global_batch_size={self.global_batch_size} does not divide across {world} "
                "processes (trainer.devices x trainer.num_nodes); choose a multiple of "
                f"{world} or set data.batch_size per process"
            )
        self.batch_size = self.global_batch_size // world

    @property
    def provides(self) -> tuple[str, ...]:
        """Batch fields the adapter yields (its class attribute `provides`)."""
        factory = self.dataset_factory
        cls = getattr(factory, "func", factory)  # a functools.partial or the class itself
        return tuple(getattr(cls, "provides"))  # noqa: B009

    def validate(self) -> None:
        """The adapter agrees with what the data config promises the models (one-line errors)."""
        ds = self.train_set
        if self.instance_maps and "instance_map" not in self.provides:
            raise ConfigError(
                f"data={self.name} sets instance_maps: true but provides no instance_map"
            )
        for attr, promised in self.promised.items():
            actual = getattr(ds, attr, None)
            if promised is not None and actual is not None and int(actual) != promised:
                raise ConfigError(
                    f"data={self.name}: the config promises {attr}={promised} "
                    f"but the dataset has {actual}"
                )
        sample = ds[0]
        h, w = sample["image"].shape[-2:]
        if (h, w) != (self.height, self.width):
            raise ConfigError(
                f"data={self.name}: images are {h}x{w} (HxW), config asks "
                f"{self.height}x{self.width} (resolution / aspect_ratio)"
            )

    def build(self, split: str) -> Dataset:
        return self.dataset_factory(split=split)

    @property
    def train_set(self) -> Dataset:
        if self._train is None:
            self._train = self.build(self.train_split)
        return self._train

    def train_dataloader(self) -> StreamLoader:
        rank, world = 0, 1
        if self.trainer is not None:
            rank, world = self.trainer.global_rank, self.trainer.world_size
        stream: dict[str, Any] = {
            "num_samples": self.steps * self.batch_size,
            "seed": self.seed,
            "shuffle": self.shuffle,
            "rank": rank,
            "world_size": world,
        }
        sampler = (
            GroupedStreamSampler(self.groups(), batch_size=self.batch_size, **stream)
            if self.alternate_groups
            else StreamSampler(dataset_len=len(self.train_set), **stream)  # type: ignore[arg-type]
        )
        return StreamLoader(
            PositionedDataset(self.train_set),
            batch_size=self.batch_size,
            sampler=KeyedSampler(sampler),
            num_workers=self.num_workers,
            collate_fn=collate,
            drop_last=True,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            consumed=self._batches_consumed,
            generator=torch.Generator().manual_seed(self.seed),  # keeps the global RNG untouched
        )

    def groups(self) -> tuple[int, ...]:
        """Lengths of the training split's groups (data.alternate_groups needs an adapter
        that has them)."""
        lengths = getattr(self.train_set, "groups", None)
        if lengths is None:
            raise ConfigError(
                f"data.alternate_groups=true needs a dataset made of groups (data=celeba_rafd); "
                f"data={self.name} has none"
            )
        return tuple(int(n) for n in lengths)

    @property
    def batches_per_cycle(self) -> int:
        """Batches until every group had one: the number of groups when alternating, else 1."""
        return len(self.groups()) if self.alternate_groups else 1

    def _batches_consumed(self) -> int:
        assert self.trainer is not None
        return int(self.trainer.lightning_module.iteration)  # type: ignore[arg-type]

    def fixed_batch(self, n: int) -> Batch:
        """The first `n` items of the sample split: the same every call, for sample grids."""
        ds = self.build(self.sample_split)
        n = min(n, len(ds))  # type: ignore[arg-type]
        return collate([ds[i] for i in range(n)])
