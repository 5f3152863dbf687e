"""Training parity with taoxugit/AttnGAN (issue 14): from the converted random-init release, 3
iterations of ganzoo's AttnGANTask on the official batches and draws give the official G, EMA G
and D's (tests/golden/attngan/train.pt and trained/, made by experiments/parity/attngan.py).

The official condGANTrainer.train() sorts each batch by caption length (prepare_data), encodes
the captions with the frozen text encoder, runs G once (z, then the CA noise), steps each D on
real / fake / wrong pairs, then G on the same images (adversarial + DAMSM word and sentence
losses with the class masks + KL), and averages G's parameters by 0.999. ganzoo runs the same
with word_mask=official_misaligned (the released `mask.repeat`), sort_by_length, PIL-resized
real stages; the test hands the task the official z and CA noise through its `noise` hook.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from ganzoo import official
from ganzoo.data.batch import Batch
from ganzoo.data.text import kept_captions
from ganzoo.models.attngan import misaligned_mask
from ganzoo.official import attngan as reader
from ganzoo.tasks.attngan import pil_resize, sort_by_caption_length
from tests.conftest import fit_batches, norm_relative_error
from tests.test_official_attngan import GOLDEN, release, small_task, stage_images


@pytest.fixture
def one_thread() -> Iterator[None]:
    """The fixtures were made with one CPU thread; other thread counts reduce in other orders."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_three_iterations_match_the_official_trainer(
    make_cfg: Any, tmp_path: Path, one_thread: None
) -> None:
    record = torch.load(GOLDEN / "train.pt", weights_only=True)
    task = small_task(make_cfg, tmp_path, "steps=3")
    task.load_state_dict(
        official.assemble(task, reader.convert(release(tmp_path / "init", "init"), task))
    )
    assert task.sort_by_length and task.real_resize == "pil"
    draws = [torch.cat([d["z"], d["ca_noise"]], 1) for d in record["draws"]]
    assert len(draws) == 3
    task.noise = lambda batch: draws.pop(0).clone()
    samples = []
    for i, b in enumerate(record["batches"]):
        image = stage_images(i)[1]
        samples += [
            {
                "image": image[j],
                "caption_tokens": b["tokens"][j],
                "caption_lengths": b["lengths"][j],
                "class_id": b["class_ids"][j],
            }
            for j in range(len(image))
        ]
    fit_batches(task, samples, batch_size=4)
    assert int(task.iteration) == 3 and not draws

    errors: dict[str, float] = {}

    def compare(prefix: str, ours: dict[str, torch.Tensor], ref: dict[str, torch.Tensor]) -> None:
        assert set(ours) == set(ref), prefix
        for key, value in ref.items():
            if value.is_floating_point():
                errors[f"{prefix}.{key}"] = norm_relative_error(ours[key], value)
            else:
                assert torch.equal(ours[key], value), f"{prefix}.{key}"

    def generator(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {reader.generator_key(k): v for k, v in state.items()}

    compare("G", task.generator.state_dict(), generator(record["G"]))
    ema = generator(torch.load(GOLDEN / "trained" / "netG_epoch_0.pth", weights_only=True))
    compare("G_ema", task.generator_ema.state_dict(), ema)
    for i, d in enumerate(task.discriminator.stage_list()):
        ref = torch.load(GOLDEN / "trained" / f"netD{i}.pth", weights_only=True)
        mapped = {reader.discriminator_key(k, i): v for k, v in ref.items()}
        compare(f"D{i}", d.state_dict(), mapped)
    worst = max(errors, key=errors.__getitem__)
    equal = sum(e == 0 for e in errors.values())
    print(f"worst relative error {errors[worst]:.2e} ({worst}); {equal}/{len(errors)} bitwise")
    assert errors[worst] <= 1e-6, (worst, errors[worst])
    assert equal == len(errors)  # the same operations in the same order: bitwise


def test_official_details_pil_stages_sort_misaligned_mask_and_empty_captions() -> None:
    # the 64x64 real stage: PIL bilinear of the uint8 image, as the official Resize + Normalize
    stages = stage_images(0)
    assert torch.equal(pil_resize(stages[1], 64), stages[0])
    # sorted longest first; ties keep their order
    batch = Batch(image=torch.zeros(4, 3, 1, 1), caption_lengths=torch.tensor([3, 6, 4, 6]))
    assert sort_by_caption_length(batch).caption_lengths.tolist() == [6, 6, 4, 3]
    # mask.repeat(queryL, 1) on rows (N HW, T): row n HW + q gets caption (n HW + q) mod N
    mask = torch.rand(3, 5) > 0.5
    official = mask.repeat(4, 1).reshape(3, 4, 5)
    assert torch.equal(misaligned_mask(mask, 4), official)
    assert not torch.equal(official, mask[:, None, :].expand(3, 4, 5))
    # a caption whose words are all non-ASCII stays (empty); one without a word is skipped
    assert kept_captions(["a red bird", "", "...", "日本 鳥", "small"]) == [
        ["a", "red", "bird"], [], ["small"],
    ]  # fmt: skip
