"""The file-backed dataset adapters, on tiny copies of the official layouts in tmp_path."""

from __future__ import annotations

import inspect
import json
import pickle
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from ganzoo.cli.build import build_datamodule
from ganzoo.core.errors import ConfigError, DataError
from ganzoo.data.ade20k import ADE20K
from ganzoo.data.batch import FIELDS, collate
from ganzoo.data.celeba import CelebA
from ganzoo.data.celeba_rafd import CelebARaFD
from ganzoo.data.cityscapes import Cityscapes
from ganzoo.data.coco_captions import CocoCaptions
from ganzoo.data.cocostuff import CocoStuff
from ganzoo.data.cub import CUB
from ganzoo.data.ffhq import FFHQ
from ganzoo.data.files import crop_flip
from ganzoo.data.image_folder import ImageFolder, LabelledImageFolder
from ganzoo.data.imagenet import ImageNet
from ganzoo.data.paired_folder import PairedFolder
from ganzoo.data.rafd import RaFD
from ganzoo.data.text import load_name_list
from tests.conftest import REPO

COMMON = dict(on_corrupt="fail", cache_dir=None, seed=0)
CELEBA_NAMES = [f"Attr_{i}" for i in range(35)] + [
    "Black_Hair",
    "Blond_Hair",
    "Brown_Hair",
    "Male",
    "Young",
]


def rgb(path: Path, w: int = 16, h: int = 12, seed: int = 0) -> np.ndarray:
    """Write a random RGB image (JPEG or PNG by suffix) and return its pixels."""
    pixels = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return pixels


def gray(path: Path, values: np.ndarray) -> None:
    """Write a single-channel PNG (8-bit for uint8 values, 16-bit for uint16)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values).save(path)


def check_fields(sample: dict[str, torch.Tensor], provides: tuple[str, ...], h: int, w: int):
    assert set(sample) == set(provides)
    for key, value in sample.items():
        dtype, shape, _ = FIELDS[key]
        assert value.dtype == dtype, key
        if shape in ("H,W", "3,H,W"):
            assert tuple(value.shape[-2:]) == (h, w), key
    assert sample["image"].shape == (3, h, w)
    assert -1.0 <= float(sample["image"].min()) and float(sample["image"].max()) <= 1.0


# ------------------------------------------------------------------- fabricated layouts


def make_ade20k(root: Path, n_train: int = 3, n_val: int = 2, size: tuple[int, int] = (16, 12)):
    w, h = size
    for split, tag, n in (("training", "train", n_train), ("validation", "val", n_val)):
        for i in range(1, n + 1):
            name = f"ADE_{tag}_{i:08d}"
            rgb(root / "images" / split / f"{name}.jpg", w, h, seed=i)
            labels = np.random.default_rng(i).integers(0, 151, (h, w)).astype(np.uint8)
            gray(root / "annotations" / split / f"{name}.png", labels)
    return root


def ade(root: Path, split: str = "training", **kw) -> ADE20K:
    args = dict(
        height=8, width=8, load_ratio=1.25, resize_filter="bicubic", random_flip=True, **COMMON
    )
    return ADE20K(root, split, **{**args, **kw})


def make_cityscapes(root: Path) -> Path:
    for split in ("train", "val"):
        for k, city in enumerate(("aachen", "bochum")):
            stem = f"{city}_000000_0000{k}9"
            rgb(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", 16, 8, seed=k)
            labels = np.full((8, 16), 7, np.uint8)  # road
            labels[2:6, 4:12] = 26  # car
            instances = labels.astype(np.uint16)
            instances[2:6, 4:8] = 26000 + 0  # car #0
            instances[2:6, 8:12] = 26001  # car #1
            folder = root / "gtFine" / split / city
            gray(folder / f"{stem}_gtFine_labelIds.png", labels)
            gray(folder / f"{stem}_gtFine_instanceIds.png", instances)
    return root


def make_celeba(root: Path, n: int = 6) -> tuple[Path, np.ndarray]:
    values = np.random.default_rng(1).choice([-1, 1], (n, 40))
    lines = [str(n), " ".join(CELEBA_NAMES)]
    partition = []
    for i in range(n):
        name = f"{i + 1:06d}.jpg"
        rgb(root / "img_align_celeba" / name, 8, 12, seed=i)
        lines.append(f"{name}  " + " ".join(f"{v:2d}" for v in values[i]))
        partition.append(f"{name} {0 if i < n - 2 else (1 if i == n - 2 else 2)}")
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    (root / "list_eval_partition.txt").write_text("\n".join(partition) + "\n")
    return root, values


def celeba(root: Path, split: str = "train", **kw) -> CelebA:
    args = dict(
        height=8,
        width=8,
        attributes=["Black_Hair", "Male", "Young"],
        crop_size=8,
        partition="eval_partition",
        resize_filter="bilinear",
        random_flip=False,
        **COMMON,
    )
    return CelebA(root, split, **{**args, **kw})


def make_rafd(root: Path) -> Path:
    for split in ("train", "test"):
        for k, expression in enumerate(("happy", "angry", "neutral")):
            rgb(root / split / expression / f"Rafd090_{k:02d}.jpg", 12, 12, seed=k)
    return root


def rafd(root: Path, split: str = "train") -> RaFD:
    return RaFD(root, split, 8, 8, 8, "bilinear", True, **COMMON)  # type: ignore[arg-type]


def make_cub(root: Path) -> Path:
    cub = root / "CUB_200_2011"
    keys = [
        "001.Black_footed_Albatross/Black_Footed_Albatross_0001_1",
        "001.Black_footed_Albatross/Black_Footed_Albatross_0002_2",
        "017.Cardinal/Cardinal_0003_3",
    ]
    images, boxes = [], []
    for i, key in enumerate(keys, start=1):
        rgb(cub / "images" / f"{key}.jpg", 16, 12, seed=i)
        images.append(f"{i} {key}.jpg")
        boxes.append(f"{i} 4.0 2.0 8.0 6.0")
        text = root / "text" / f"{key}.txt"
        text.parent.mkdir(parents=True, exist_ok=True)
        caps = [f"this bird number {i} has a red crown and caption {c}" for c in range(10)]
        caps[0] = "A very very long caption " + " ".join(f"w{j}" for j in range(30))
        text.write_text("\n".join(caps) + "\n")
    (cub / "images.txt").write_text("\n".join(images) + "\n")
    (cub / "bounding_boxes.txt").write_text("\n".join(boxes) + "\n")
    for split, names in (("train", keys[:2]), ("test", keys[2:])):
        (root / split).mkdir()
        (root / split / "filenames.pickle").write_bytes(pickle.dumps(names, protocol=2))
    return root


def cub(root: Path, split: str = "train", cache_dir: Path | None = None) -> CUB:
    return CUB(
        root,
        split,
        8,
        8,
        caption_length=6,
        captions_per_image=10,
        vocabulary="all",
        load_ratio=1.25,
        resize_filter="bilinear",
        random_flip=True,
        on_corrupt="fail",
        cache_dir=cache_dir,
        seed=0,
    )


# ------------------------------------------------------------------------------ ADE20K


def test_ade20k_fields_and_spade_label_convention(tmp_path: Path) -> None:
    root = make_ade20k(tmp_path / "ADEChallengeData2016", size=(8, 8))
    train, val = ade(root), ade(root, "validation")
    assert (len(train), len(val)) == (3, 2) and train.num_labels == 151
    check_fields(train[0], ADE20K.provides, 8, 8)
    # validation is resized to the output (8x8 = stored): labels exactly as SPADE maps them
    raw = np.asarray(Image.open(root / "annotations/validation/ADE_val_00000001.png")).astype(int)
    expected = np.where(raw == 0, 150, raw - 1)  # 0 "other" -> 150, k -> k - 1
    assert torch.equal(val[0]["label_map"], torch.from_numpy(expected))
    assert int(val[0]["label_map"].max()) <= 150
    # training: resize to load_ratio x output before the random crop (8 * 1.25 = 10)
    assert train.pixels(0)[1]["image"].shape == (10, 10, 3)


def test_crop_flip_is_deterministic_and_identical_across_maps() -> None:
    image = np.random.default_rng(0).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    image[..., 2] = np.arange(12) * 20  # a column ramp: tells the crop offset and the flip
    labels = image[..., 0].astype(np.int32) // 3  # a function of the pixel: survives only
    instances = image[..., 1].astype(np.int32) * 7  # if all maps move together
    arrays = {"image": image, "label_map": labels, "instance_map": instances}
    flips, offsets = set(), set()
    for seed in range(60):
        a = crop_flip(arrays, 8, 8, np.random.default_rng(seed), flip=True)
        b = crop_flip(arrays, 8, 8, np.random.default_rng(seed), flip=True)
        assert all(np.array_equal(a[k], b[k]) for k in arrays)
        assert np.array_equal(a["label_map"], a["image"][..., 0].astype(np.int32) // 3)
        assert np.array_equal(a["instance_map"], a["image"][..., 1].astype(np.int32) * 7)
        ramp = a["image"][0, :, 2].astype(int)
        flips.add(bool(ramp[0] > ramp[-1]))
        offsets.add(int(min(ramp[0], ramp[-1])) // 20)
    assert flips == {False, True} and offsets == {0, 1, 2, 3, 4}  # both flips, every x
    centre = crop_flip(arrays, 8, 8, None, flip=True)
    assert np.array_equal(centre["image"], image[1:9, 2:10])


def test_training_draws_depend_on_seed_and_not_on_eval(tmp_path: Path) -> None:
    root = make_ade20k(tmp_path / "ade")
    a, b, c = ade(root, seed=1), ade(root, seed=1), ade(root, seed=2)
    first = [a[i]["image"] for i in range(3)]
    assert all(torch.equal(x, b[i]["image"]) for i, x in enumerate(first))
    assert not all(torch.equal(x, c[i]["image"]) for i, x in enumerate(first))
    val = ade(root, "validation")
    assert torch.equal(val[1]["image"], val[1]["image"])


def test_augmentations_replay_on_resume_and_for_any_num_workers(make_cfg, tmp_path: Path) -> None:
    root = make_ade20k(tmp_path / "ade")

    def batches(workers: int, consumed: int = 0) -> tuple[list[torch.Tensor], list[int]]:
        cfg = make_cfg(
            "data=ade20k",
            f"data.root={root}",
            "data.resolution=8",
            "data.batch_size=2",
            f"data.num_workers={workers}",
            "steps=6",
            f"paths.cache_dir={tmp_path / 'cache'}",
        )
        loader = build_datamodule(cfg).train_dataloader()
        loader.load_state_dict({"batches_consumed": consumed})
        items = [i for i, _ in loader.sampler]  # type: ignore[attr-defined]
        return [b.image for b in loader], items

    straight, items = batches(0)
    assert len(straight) == 6
    resumed, _ = batches(0, consumed=2)
    assert all(torch.equal(a, b) for a, b in zip(straight[2:], resumed, strict=True))
    workers, _ = batches(2)
    assert all(torch.equal(a, b) for a, b in zip(straight, workers, strict=True))
    images = torch.cat(straight)
    repeats = [(i, j) for i in range(12) for j in range(i) if items[i] == items[j]]
    assert repeats and any(not torch.equal(images[i], images[j]) for i, j in repeats)


# -------------------------------------------------------------------------- Cityscapes


def test_cityscapes_instance_ids_and_aspect(tmp_path: Path) -> None:
    root = make_cityscapes(tmp_path / "cityscapes")
    ds = Cityscapes(root, "val", 8, 16, "bicubic", True, **COMMON)  # type: ignore[arg-type]
    assert len(ds) == 2 and ds.num_labels == 35
    sample = ds[0]
    check_fields(sample, Cityscapes.provides, 8, 16)
    inst, labels = sample["instance_map"], sample["label_map"]
    assert set(inst.unique().tolist()) == {7, 26000, 26001}  # 16-bit ids survive
    assert torch.equal(inst // 1000, torch.where(inst >= 1000, labels, 0))  # label*1000 + k
    assert torch.equal(inst[labels == 7], labels[labels == 7])  # stuff keeps its label id
    half = Cityscapes(root, "train", 4, 8, "bicubic", True, **COMMON)[0]  # type: ignore[arg-type]
    assert set(half["instance_map"].unique().tolist()) <= {7, 26000, 26001}  # nearest only


# -------------------------------------------------------------------------- COCO-Stuff


def test_cocostuff_unlabeled_255_becomes_182(tmp_path: Path) -> None:
    root = tmp_path / "cocostuff"
    for split in ("train2017", "val2017"):
        rgb(root / "images" / split / "000000000139.jpg", 8, 8)
        labels = np.array([[0, 181, 255, 91]] * 8, np.uint8).repeat(2, axis=1)
        gray(root / "stuffthingmaps_trainval2017" / split / "000000000139.png", labels)
    args = dict(load_ratio=1.0, resize_filter="bicubic", random_flip=True, **COMMON)
    ds = CocoStuff(root, "val2017", 8, 8, instances=False, **args)  # type: ignore[arg-type]
    assert ds.num_labels == 183
    assert ds[0]["label_map"][0].tolist() == [0, 0, 181, 181, 182, 182, 91, 91]
    with pytest.raises(DataError, match="instance_maps") as err:
        CocoStuff(root, "val2017", 8, 8, instances=True, **args)  # type: ignore[arg-type]
    assert "\n" not in str(err.value) and "coco_generate_instance_map" in str(err.value)
    gray(root / "instance_maps/val2017/000000000139.png", np.full((8, 8), 3, np.uint8))
    sample = CocoStuff(root, "val2017", 8, 8, instances=True, **args)[0]  # type: ignore[arg-type]
    assert sample["instance_map"].dtype == torch.int64 and int(sample["instance_map"][0, 0]) == 3


# ------------------------------------------------------------------------------ CelebA


def test_celeba_attributes_selected_by_name(tmp_path: Path) -> None:
    root, values = make_celeba(tmp_path / "celeba")
    train = celeba(root)
    assert len(train) == 4 and train.num_attributes == 3
    cols = [CELEBA_NAMES.index(n) for n in ("Black_Hair", "Male", "Young")]
    for i in range(4):
        sample = train[i]
        check_fields(sample, CelebA.provides, 8, 8)
        assert sample["attributes"].tolist() == [float(values[i, c] == 1) for c in cols]
    assert len(celeba(root, "val")) == 1 and len(celeba(root, "test")) == 1
    # centre crop 8x8 of the 8x12 image (rows 2..9), no resize at the crop size: exact
    raw = np.asarray(Image.open(root / "img_align_celeba/000001.jpg").convert("RGB"))
    expected = torch.from_numpy(raw[2:10].copy()).permute(2, 0, 1).float() / 127.5 - 1
    assert torch.allclose(celeba(root)[0]["image"], expected)


def test_celeba_stargan_partition_matches_the_official_shuffle(tmp_path: Path) -> None:
    root, _ = make_celeba(tmp_path / "celeba", n=6)
    lines = (root / "list_attr_celeba.txt").read_text().splitlines()[2:]
    random.seed(1234)  # StarGAN data_loader.py:39-40
    random.shuffle(lines)
    test = celeba(root, "test", partition="stargan")
    assert [p.name for p in test.files] == [line.split()[0] for line in lines]  # all < 1999
    with pytest.raises(DataError, match="split train"):
        celeba(root, "train", partition="stargan")


def test_celeba_unknown_attribute_lists_valid_names(tmp_path: Path) -> None:
    root, _ = make_celeba(tmp_path / "celeba")
    with pytest.raises(ConfigError) as err:
        celeba(root, attributes=["Black_Hair", "Blonde_Hair"])
    message = str(err.value)
    assert "\n" not in message and "Blonde_Hair" in message
    assert "valid names: " in message and "Blond_Hair" in message and "Young" in message


def test_celeba_rafd_pads_attributes_with_a_domain_mask(tmp_path: Path) -> None:
    croot, values = make_celeba(tmp_path / "celeba")
    rroot = make_rafd(tmp_path / "RaFD")
    ds = CelebARaFD(
        croot, rroot, "train", 8, 8, ["Male", "Young"], 8, 8, "eval_partition", "bilinear",
        True, "fail", None, 0,
    )  # fmt: skip
    assert len(ds) == 4 + 3 and ds.num_attributes == 2 + 3
    first, last = ds[0], ds[len(ds) - 1]
    check_fields(first, CelebARaFD.provides, 8, 8)
    assert first["domain_mask"].tolist() == [1.0, 0.0] and last["domain_mask"].tolist() == [0, 1]
    assert first["attributes"][2:].tolist() == [0.0, 0.0, 0.0]
    assert last["attributes"][:2].tolist() == [0.0, 0.0] and last["attributes"][2:].sum() == 1
    assert rafd(rroot).classes == ["angry", "happy", "neutral"]  # sorted, as ImageFolder


# ---------------------------------------------------------------- ImageNet and folders


def test_imagenet_class_index_is_sorted_wnid(tmp_path: Path) -> None:
    root = tmp_path / "imagenet"
    for k, wnid in enumerate(("n03000000", "n01000000", "n02000000")):  # created unsorted
        rgb(root / "train" / wnid / f"{wnid}_1.JPEG", 16, 12, seed=k)
        rgb(root / "val" / wnid / f"ILSVRC2012_val_{k}.JPEG", 12, 16, seed=k)
    train = ImageNet(root, "train", 8, 8, "bilinear", False, **COMMON)  # type: ignore[arg-type]
    assert train.wnids == ["n01000000", "n02000000", "n03000000"] and train.num_classes == 3
    for i in range(3):
        sample = train[i]
        check_fields(sample, ImageNet.provides, 8, 8)
        assert train.files[i].parent.name == train.wnids[int(sample["class_id"])]
    val = ImageNet(root, "val", 8, 8, "bilinear", False, **COMMON)  # type: ignore[arg-type]
    assert [int(val[i]["class_id"]) for i in range(3)] == [0, 1, 2]
    rgb(root / "val" / "n09999999" / "x.JPEG")
    with pytest.raises(DataError, match="n09999999"):
        ImageNet(root, "val", 8, 8, "bilinear", False, **COMMON)  # type: ignore[arg-type]


def test_image_folders_classes_mirror_and_ffhq(tmp_path: Path) -> None:
    root = tmp_path / "pets"
    for k, name in enumerate(("dog/a.png", "cat/b.jpg", "cat/sub/c.png")):
        rgb(root / name, 16, 12, seed=k)
    plain = ImageFolder(root, "train", 8, 8, True, "lanczos", **COMMON)  # type: ignore[arg-type]
    assert len(plain) == 6 and plain.stored == 3  # mirrored copies appended
    check_fields(plain[0], ImageFolder.provides, 8, 8)
    assert torch.equal(plain[3]["image"], plain[0]["image"].flip(-1))
    classes = LabelledImageFolder(root, "val", 8, 8, False, "lanczos", **COMMON)  # type: ignore[arg-type]
    assert classes.classes == ["cat", "dog"]
    assert [int(classes[i]["class_id"]) for i in range(3)] == [0, 0, 1]
    ffhq = tmp_path / "ffhq"
    for i in (0, 1, 1000):
        rgb(ffhq / f"{i // 1000 * 1000:05d}" / f"{i:05d}.png", 8, 8, seed=i)
    faces = FFHQ(ffhq, "train", 8, 8, True, "lanczos", **COMMON)  # type: ignore[arg-type]
    assert len(faces) == 6 and faces.files[-1].name == "01000.png"


def test_paired_folder_matches_stems_and_checks_labels(tmp_path: Path) -> None:
    root = tmp_path / "pairs"
    for stem in ("a", "b"):
        rgb(root / "images" / f"{stem}.jpg", 8, 8)
        gray(root / "labels" / f"{stem}.png", np.full((8, 8), 255, np.uint8))
    args = dict(resize_filter="bicubic", random_flip=True, **COMMON)
    ds = PairedFolder(root, "train", 8, 8, 4, True, **args)  # type: ignore[arg-type]
    check_fields(ds[1], PairedFolder.provides, 8, 8)
    assert int(ds[1]["label_map"].max()) == 4 and ds.num_labels == 5  # 255 -> label_nc
    with pytest.raises(DataError, match=r"b\.png has label values"):
        PairedFolder(root, "train", 8, 8, 4, False, **args)[1]  # type: ignore[arg-type]


# ------------------------------------------------------------------------ layout errors


LAYOUT_CASES: dict[str, Callable[[Path], object]] = {
    "ade20k": lambda r: ade(r / "ADEChallengeData2016"),
    "cityscapes": lambda r: Cityscapes(r / "cityscapes", "train", 8, 16, "bicubic", True, **COMMON),  # type: ignore[arg-type]
    "celeba": lambda r: celeba(r / "celeba"),
    "imagenet": lambda r: ImageNet(r / "imagenet", "train", 8, 8, "bilinear", False, **COMMON),  # type: ignore[arg-type]
    "cub": lambda r: cub(r / "birds"),
}


@pytest.mark.parametrize("name", sorted(LAYOUT_CASES))
def test_missing_root_names_layout_and_path(tmp_path: Path, name: str) -> None:
    with pytest.raises(DataError) as err:
        LAYOUT_CASES[name](tmp_path)
    message = str(err.value)
    assert "\n" not in message and f"data={name}" in message
    assert "expected layout" in message and str(tmp_path) in message


def test_missing_subfolder_and_unpaired_image(tmp_path: Path) -> None:
    root = make_ade20k(tmp_path / "ADEChallengeData2016")
    (root / "annotations/training/ADE_train_00000002.png").unlink()
    with pytest.raises(DataError) as err:
        ade(root)
    assert "ADE_train_00000002.jpg has no ADE_train_00000002.png" in str(err.value)
    assert str(root / "annotations" / "training") in str(err.value)
    assert "expected layout" in str(err.value) and "\n" not in str(err.value)
    for path in (root / "annotations/validation").iterdir():
        path.unlink()
    (root / "annotations/validation").rmdir()
    with pytest.raises(DataError, match=f"folder {root / 'annotations' / 'validation'} not found"):
        ade(root, "validation")
    with pytest.raises(ConfigError, match="valid choices: training, validation"):
        ade(root, "train")


# ----------------------------------------------------------------------- corrupt images


def test_corrupt_image_fail_names_it_and_skip_counts(tmp_path: Path) -> None:
    root = make_ade20k(tmp_path / "ADEChallengeData2016", n_train=4)
    bad = root / "images/training/ADE_train_00000002.jpg"
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(DataError) as err:
        ade(root)[1]
    assert "ADE_train_00000002.jpg" in str(err.value) and "on_corrupt=skip" in str(err.value)
    skip = ade(root, "validation", on_corrupt="skip")  # fine split: nothing skipped
    assert skip.skipped == 0
    ds = ade(root, on_corrupt="skip")
    with pytest.warns(UserWarning, match="ADE_train_00000002.jpg"):
        index, arrays = ds.pixels(1)
    assert index == 2 and np.array_equal(arrays["image"], ds.pixels(2)[1]["image"])
    assert ds.skipped == 1 and ds.skipped_files == ["ADE_train_00000002.jpg"]
    # DataLoader workers share the count with the main process
    ds = ade(root, on_corrupt="skip")
    loader = DataLoader(ds, batch_size=2, num_workers=1, collate_fn=collate)
    batches = list(loader)  # the warning is printed by the worker
    assert sum(b.size for b in batches) == 4 and ds.skipped == 1


# ----------------------------------------------------------------------- text datasets


def test_restricted_unpickler_accepts_only_lists_of_strings(tmp_path: Path) -> None:
    good = tmp_path / "good.pickle"
    good.write_bytes(pickle.dumps(["001.A/a_1", "002.B/b_2"], protocol=2))
    assert load_name_list(good) == ["001.A/a_1", "002.B/b_2"]

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    for name, payload in {
        "global": [Evil()],
        "class": [Path("x")],
        "dict": {"a": "b"},
        "ints": ["a", 3],
    }.items():
        path = tmp_path / f"{name}.pickle"
        path.write_bytes(pickle.dumps(payload))
        with pytest.raises(DataError, match=str(path)):
            load_name_list(path)


def test_cub_captions_vocabulary_and_bbox_crop(tmp_path: Path) -> None:
    root = make_cub(tmp_path / "birds")
    train = cub(root, cache_dir=tmp_path / "cache")
    assert (tmp_path / "cache/captions.json").is_file() and train.num_classes == 200
    sample = train[0]
    check_fields(sample, CUB.provides, 8, 8)
    assert sample["caption_tokens"].shape == (6,) and 1 <= int(sample["caption_lengths"]) <= 6
    n = int(sample["caption_lengths"])
    assert (sample["caption_tokens"][:n] > 0).all() and (sample["caption_tokens"][n:] == 0).all()
    assert train.table.words[0] == "<end>" and "cardinal" not in train.table.words
    assert "caption" in train.table.words and "3" in train.table.words  # test words: "all"
    assert int(cub(root, "test")[0]["class_id"]) == 16  # 017.Cardinal
    # bbox (4, 2, 8, 6): square of r = 6 around (8, 5), clipped -> 12 x 11 -> short side 10
    assert train.pixels(0)[1]["image"].shape == (10, 10, 3)
    again = cub(root, cache_dir=tmp_path / "cache")  # from captions.json: the same table
    assert again.table.words == train.table.words and again.vocab_size == train.vocab_size
    (root / "text/017.Cardinal/Cardinal_0003_3.txt").write_text("a new caption\n" * 10)
    with pytest.raises(DataError, match="stale caption cache"):
        cub(root, cache_dir=tmp_path / "cache")


def make_coco(root: Path, year: int) -> Path:
    """A tiny COCO caption release of `year`: train ids 9, 3 and val id 5, 5 captions each."""
    for split, ids in ((f"train{year}", (9, 3)), (f"val{year}", (5,))):
        name = "COCO_" + split + "_{:012d}.jpg" if year == 2014 else "{:012d}.jpg"
        rgb(root / split / name.format(ids[0]), 16, 12)
        for i in ids[1:]:
            rgb(root / split / name.format(i), 12, 16)
        notes = {
            "images": [{"id": i, "file_name": name.format(i)} for i in ids],
            "annotations": [
                {"id": 100 * i + c, "image_id": i, "caption": f"A cat number {i} sits {c}."}
                for i in ids
                for c in range(5)
            ],
        }
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / f"captions_{split}.json").write_text(json.dumps(notes))
    return root


def coco(root: Path, split: str, year: int, **kw) -> CocoCaptions:
    args = {**COMMON, **kw}
    return CocoCaptions(root, split, year, 8, 8, 12, 5, "train", 1.1875, "bilinear", True, **args)  # type: ignore[arg-type]


@pytest.mark.parametrize("year", [2014, 2017])
def test_coco_captions(tmp_path: Path, year: int) -> None:
    root = make_coco(tmp_path / "coco", year)
    ds = coco(root, f"train{year}", year, cache_dir=tmp_path / "cache")
    prefix = f"COCO_train{year}_" if year == 2014 else ""
    assert [p.name for p in ds.files] == [f"{prefix}{i:012d}.jpg" for i in (3, 9)]  # by id
    assert ds.augment and ds.train_split == f"train{year}"
    sample = ds[0]
    check_fields(sample, CocoCaptions.provides, 8, 8)
    words = [ds.table.words[t] for t in sample["caption_tokens"][: sample["caption_lengths"]]]
    assert words[:4] == ["a", "cat", "number", "3"]
    assert "5" not in ds.table.words  # vocabulary from the train split only
    assert (tmp_path / f"cache/captions{year}.json").is_file()  # one caption table per year
    val = coco(root, f"val{year}", year, cache_dir=tmp_path / "cache")  # table from the cache
    assert not val.augment and val.table.words == ds.table.words and len(val) == 1
    other = 2017 if year == 2014 else 2014
    with pytest.raises(ConfigError, match=f"valid choices: train{year}, val{year}"):
        coco(root, f"train{other}", year)
    with pytest.raises(DataError, match=rf"\{{train{other},val{other}\}}"):
        coco(root, f"train{other}", other)  # the other year's folders are named


def test_coco_captions_rejects_an_unknown_year(tmp_path: Path) -> None:
    root = make_coco(tmp_path / "coco", 2014)
    with pytest.raises(ConfigError, match="year=2015; valid choices: 2014, 2017"):
        coco(root, "train2015", 2015)


@pytest.mark.parametrize("year", [None, 2017])
def test_coco_captions_config_derives_the_splits_from_the_year(
    make_cfg, tmp_path: Path, year: int | None
) -> None:
    expected = year or 2014  # the default: AttnGAN's release
    root = make_coco(tmp_path / "coco", expected)
    override = [] if year is None else [f"data.dataset.year={year}"]
    cfg = make_cfg(
        "data=coco_captions",
        f"data.root={root}",
        "data.resolution=8",
        "data.num_workers=0",
        f"paths.cache_dir={tmp_path / 'cache'}",
        *override,
    )
    assert (cfg.data.train_split, cfg.data.sample_split) == (f"train{expected}", f"val{expected}")
    dm = build_datamodule(cfg)
    assert dm.build(dm.train_split).year == expected  # type: ignore[attr-defined]
    assert dm.fixed_batch(1).caption_tokens.shape == (1, 12)


# ------------------------------------------------------------------------------ configs


ADAPTER_CONFIGS = [
    "ade20k", "celeba", "celeba_rafd", "cityscapes", "coco_captions", "cocostuff", "cub",
    "ffhq", "image_folder", "imagenet", "paired_folder", "rafd",
]  # fmt: skip


@pytest.mark.parametrize("data", ADAPTER_CONFIGS)
def test_every_data_config_sets_every_adapter_argument(make_cfg, data: str) -> None:
    from hydra.utils import get_class

    cfg = make_cfg(f"data={data}", "data.root=/nowhere", "data.label_nc=3")
    block = cfg.data.dataset
    params = inspect.signature(get_class(block._target_).__init__).parameters
    expected = {p for p in params if p not in ("self", "split")}
    assert set(block) - {"_target_", "_partial_"} == expected


def test_datamodule_validates_a_real_adapter(make_cfg, tmp_path: Path) -> None:
    root = make_ade20k(tmp_path / "ADEChallengeData2016")
    cfg = make_cfg(
        "data=ade20k",
        f"data.root={root}",
        "data.resolution=8",
        "data.batch_size=2",
        "data.num_workers=0",
        f"paths.cache_dir={tmp_path / 'cache'}",
    )
    dm = build_datamodule(cfg)
    dm.validate()  # 151 labels promised (150 + dontcare), 8x8 images
    batch = dm.fixed_batch(2)
    assert batch.image.shape == (2, 3, 8, 8) and batch.label_map.dtype == torch.int64
    assert dm.provides == ("image", "label_map")


def test_data_configs_exist_for_every_adapter() -> None:
    names = {p.stem for p in (REPO / "conf/data").glob("*.yaml")}
    assert set(ADAPTER_CONFIGS) <= names
