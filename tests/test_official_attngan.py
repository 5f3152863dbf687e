"""taoxugit/AttnGAN releases -> ganzoo (issue 13): the golden files of experiments/parity/attngan.py
(official random-init and trained G_NET, D_NET64/128, DAMSM encoders at a small bird_attn2
structure) convert, and ganzoo's G (and EMA G), D's and encoders give the official outputs to
1e-5; a vocabulary that differs, a structure that differs and a pickle that would run code are
refused in one line."""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from omegaconf import OmegaConf
from PIL import Image

from ganzoo import official
from ganzoo.cli.build import build_task
from ganzoo.official import attngan as reader
from ganzoo.official import damsm as damsm_reader
from ganzoo.official.base import ConvertError
from tests.conftest import REPO, close

pytestmark = pytest.mark.usefixtures("one_thread")  # exact on one CPU thread (summation order)

GOLDEN = REPO / "tests" / "golden" / "attngan"
WORDS = ["<end>", *"a bird with red wings small blue has long beak this".split()]
SMALL = (  # the fixtures' configuration (experiments/parity/attngan.py CONFIG)
    "model=attngan",
    "data=cub",
    "data.resolution=128",
    "data.vocab_size=12",
    "data.batch_size=4",
    "model.generator.gf_dim=2",
    "model.generator.z_dim=8",
    "model.generator.c_dim=4",
    "model.generator.r_num=1",
    "model.generator.branch_num=2",
    "model.generator.word_mask=official_misaligned",
    "model.discriminator.df_dim=2",
    "model.damsm.text_encoder.embedding_dim=8",
    "model.allow_untrained_damsm=true",
)


def stand_in_inception() -> dict[str, torch.Tensor]:
    spec = importlib.util.spec_from_file_location(
        "stand_in_inception", GOLDEN / "stand_in_inception.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.stand_in_inception()  # type: ignore[no-any-return]


def release(
    folder: Path, which: str = "trained", vocabulary: Path | None = None, image: bool = True
) -> Path:
    """An official-format release folder: netG / netD files of `which` (init or trained), the
    DAMSM text encoder, captions.pickle, and image_encoder200.pth rebuilt as CNN_ENCODER saves
    it (the stand-in Inception layers + the fixture's trained layers)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("netG_epoch_0.pth", "netD0.pth", "netD1.pth"):
        shutil.copy(GOLDEN / which / name, folder / name)
    shutil.copy(GOLDEN / "init" / "text_encoder200.pth", folder / "text_encoder200.pth")
    shutil.copy(vocabulary or GOLDEN / "captions.pickle", folder / "captions.pickle")
    if image:
        (folder / "image_encoder200.pth").symlink_to(image_encoder_file())
    return folder


@functools.cache
def image_encoder_file() -> Path:
    """image_encoder200.pth as CNN_ENCODER saves it (90 MB; built once per test session)."""
    layers = {
        k: v for k, v in stand_in_inception().items() if not k.startswith(("AuxLogits", "fc."))
    }
    layers.update(torch.load(GOLDEN / "image_encoder_trained.pth", weights_only=True))
    path = Path(tempfile.mkdtemp(prefix="attngan_release_")) / "image_encoder200.pth"
    torch.save(layers, path)
    return path


def small_task(make_cfg: Any, tmp_path: Path, *extra: str, words: list[str] = WORDS) -> Any:
    """The small AttnGAN task, with ganzoo's prepared vocabulary `words` in its cache folder."""
    cache = tmp_path / "cache"
    cache.mkdir(exist_ok=True)
    (cache / "captions.json").write_text(json.dumps({"key": {}, "words": words, "captions": {}}))
    cfg = make_cfg(*SMALL, f"data.dataset.cache_dir={cache}", *extra)
    task = build_task(cfg)
    task.run_config = OmegaConf.to_container(cfg, resolve=True)
    return task


def converted(make_cfg: Any, tmp_path: Path, *extra: str, which: str = "trained") -> Any:
    task = small_task(make_cfg, tmp_path, *extra)
    source = release(tmp_path / f"release_{which}", which)
    task.load_state_dict(official.assemble(task, reader.convert(source, task)))
    return task


def stage_images(batch: int) -> list[torch.Tensor]:
    """The official stage tensors of a fixture batch (datasets.py: Resize for the 64 stage,
    ToTensor, Normalize(0.5, 0.5))."""
    arrays = np.load(GOLDEN / "images.npz")[f"batch{batch}"]
    norm = T.Compose([T.ToTensor(), T.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
    small = torch.stack([norm(T.Resize(64)(Image.fromarray(a))) for a in arrays])
    return [small, torch.stack([norm(Image.fromarray(a)) for a in arrays])]


def test_converted_release_gives_the_official_outputs(make_cfg: Any, tmp_path: Path) -> None:
    task = converted(make_cfg, tmp_path)
    ref = torch.load(GOLDEN / "forward.pt", weights_only=True)
    tokens, lengths = ref["tokens"], ref["lengths"]
    text = task.damsm.text_encoder.eval()
    with torch.no_grad():
        words, sentence = text(tokens, lengths)
        assert close(words, ref["words"]) and close(sentence, ref["sentence"])
        mask = (tokens == 0)[:, : words.shape[2]]
        for mode in ("eval", "train"):
            out = ref["G"][f"G/{mode}"]
            for name, net in (("G", task.generator), ("G_ema", task.generator_ema)):
                g = copy.deepcopy(net).train(mode == "train")
                images, maps, mu, logvar = g(ref["z"], sentence, words, mask, ref["ca_noise"][mode])
                assert close(mu, out["mu"]) and close(logvar, out["logvar"]), (name, mode)
                for ours, theirs in zip(images, out["images"], strict=True):
                    assert close(ours[:, :, ::4, ::4], theirs), (name, mode, "images")
                for ours, theirs in zip(maps, out["maps"], strict=True):
                    assert close(ours[:, :, ::4, ::4], theirs), (name, mode, "maps")
        # the per-caption mask (ganzoo's default) is another computation for mixed lengths
        g = copy.deepcopy(task.generator_ema).eval()
        for stage in g.next_stages:
            stage.att.word_mask = "per_caption"
        mine = g(ref["z"], sentence, words, mask, ref["ca_noise"]["eval"])[1][0][:, :, ::4, ::4]
        assert not close(mine, ref["G"]["G/eval"]["maps"][0], 1e-3)
        for i, d in enumerate(task.discriminator.stage_list()):
            for mode in ("eval", "train"):
                net = copy.deepcopy(d).train(mode == "train")
                for which, batch in (("batch0", 0), ("batch1", 1)):
                    h = net(stage_images(batch)[i])
                    uncond, cond = ref["D"][f"D{i}/{mode}/{which}"]
                    assert close(net.uncond(h), uncond) and close(net.cond(h, sentence), cond)
        regions, code = task.damsm.image_encoder.eval()(stage_images(0)[0][:2])
    assert close(regions, ref["image_encoder"]["regions"])
    assert close(code, ref["image_encoder"]["code"])


def test_damsm_release_converts_and_reorders_the_word_rows(make_cfg: Any, tmp_path: Path) -> None:
    """model=damsm from text_encoder200.pth + image_encoder200.pth; ganzoo's vocabulary in
    another order: the embedding rows follow it, so the same words give the same features."""
    shuffled = [WORDS[0], *reversed(WORDS[1:])]
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "captions.json").write_text(json.dumps({"key": {}, "words": shuffled}))
    cfg = make_cfg(
        "model=damsm", "data=cub", "data.vocab_size=12", f"data.dataset.cache_dir={cache}",
        "model.damsm.text_encoder.embedding_dim=8",
    )  # fmt: skip
    task = build_task(cfg)
    task.run_config = OmegaConf.to_container(cfg, resolve=True)
    converted = damsm_reader.convert(release(tmp_path / "rel"), task)
    assert any("reordered" in n for n in converted.notes)
    task.load_state_dict(official.assemble(task, converted))
    ref = torch.load(GOLDEN / "forward.pt", weights_only=True)
    ours_ids = {w: i for i, w in enumerate(shuffled)}
    tokens = ref["tokens"].apply_(lambda t: ours_ids[WORDS[t]] if t else 0)
    with torch.no_grad():
        words, sentence = task.generator.text_encoder.eval()(tokens, ref["lengths"])
    assert close(words, ref["words"]) and close(sentence, ref["sentence"])


def test_wrong_vocabulary_structure_and_unsafe_pickles_are_refused(
    make_cfg: Any, tmp_path: Path
) -> None:
    task = small_task(make_cfg, tmp_path, words=[*WORDS[:-1], "tail"])
    with pytest.raises(ConvertError, match=r"differs from ganzoo's .*'tail'") as err:
        reader.convert(release(tmp_path / "a", image=False), task)
    assert "\n" not in str(err.value)
    three = small_task(make_cfg, tmp_path, "model.generator.branch_num=3", "data.resolution=256")
    with pytest.raises(ConvertError, match="source has 2 stages .*branch_num=3"):
        reader.convert(release(tmp_path / "b", image=False), three)
    wide = small_task(make_cfg, tmp_path, "model.generator.gf_dim=4")
    with pytest.raises(ConvertError, match="source GF_DIM 2; model.generator.gf_dim=4"):
        reader.convert(release(tmp_path / "c", image=False), wide)
    fewer = small_task(make_cfg, tmp_path, "data.vocab_size=11")
    with pytest.raises(ConvertError, match="has 12 words; data.vocab_size=11"):
        reader.convert(release(tmp_path / "d", image=False), fewer)

    class Boom:
        def __reduce__(self) -> Any:
            return (Path.touch, (tmp_path / "pwned",))

    bad = tmp_path / "captions_bad.pickle"
    bad.write_bytes(pickle.dumps([[], [], {0: "<end>"}, Boom()], protocol=2))
    with pytest.raises(ConvertError, match="not a plain pickle.*refusing to load"):
        reader.convert(release(tmp_path / "e", vocabulary=bad, image=False), task)
    assert not (tmp_path / "pwned").exists()


def test_a_converted_release_feeds_its_damsm_to_training(make_cfg: Any, tmp_path: Path) -> None:
    """model.damsm_ckpt accepts the converted AttnGAN checkpoint itself (its damsm.* encoders),
    so fine-tuning a release needs no separate model=damsm run."""
    from ganzoo.tasks.damsm import load_damsm_state

    task = converted(make_cfg, tmp_path)
    path = tmp_path / "converted.ckpt"
    torch.save({"state_dict": task.state_dict(), "ganzoo_config": {}}, path)
    fresh = small_task(make_cfg, tmp_path)
    load_damsm_state(str(path), fresh.damsm)
    for key, value in task.damsm.state_dict().items():
        assert torch.equal(fresh.damsm.state_dict()[key], value), key
