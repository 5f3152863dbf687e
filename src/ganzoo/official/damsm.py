"""Reader of AttnGAN's DAMSM encoders (taoxugit/AttnGAN pretrain_DAMSM.py): model=damsm.

    python -m ganzoo.convert model=damsm data=cub source=DAMSMencoders/bird

The source folder holds what pretrain_DAMSM.py saved and the vocabulary its word ids follow:

    text_encoder<epoch>.pth   RNN_ENCODER state dict (Embedding(n_words, 300), BiLSTM)
    image_encoder<epoch>.pth  CNN_ENCODER state dict (Inception-v3 layers, emb_features,
                              emb_cnn_code); optional: without it the image encoder stays at its
                              initialisation (noted)
    captions.pickle           the dataset's [train captions, test captions, ixtoword,
                              wordtoix] (AttnGAN's data/birds or data/coco metadata; copy or link
                              it into the folder)

Files load with weights_only=True; captions.pickle through a restricted unpickler that builds
nothing but lists, dicts, strings and numbers. The released vocabulary's word order came from a
Python 2 dict, ganzoo's follows first appearance: the text encoder's embedding rows are
reordered into ganzoo's vocabulary of the same data (its prepared captions*.json, or the
adapter's own word list), which must hold exactly the same words (else one line naming one that
differs). Names map 1:1 (the Inception layers under `backbone.`); BatchNorm
`num_batches_tracked`, which the 2018 files predate, start at 0.
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from ganzoo.core.errors import DataError
from ganzoo.data.text import load_plain
from ganzoo.official.base import Converted, ConvertError, check_shape, load_torch, require

_BACKBONE = re.compile(r"^(Conv2d_\w+|Mixed_\w+)\.")


def find(source: Path, pattern: str, what: str, required: bool = True) -> Path | None:
    """The file of a release folder matching `pattern` (the highest epoch number if several)."""
    require(source.is_dir(), f"source={source} must be a folder with the {what} files")
    found = sorted(source.glob(pattern), key=lambda p: (_epoch(p), p.name))
    if not found:
        require(not required, f"source={source}: no {pattern} ({what}) in the folder")
        return None
    return found[-1]


def _epoch(path: Path) -> int:
    digits = re.findall(r"\d+", path.stem)
    return int(digits[-1]) if digits else -1


def official_vocabulary(path: Path) -> list[str]:
    """ixtoword of a captions.pickle as a list (id -> word), read safely."""
    try:
        data = load_plain(path)
    except DataError as err:
        raise ConvertError(str(err)) from None
    ok = isinstance(data, list | tuple) and len(data) == 4 and isinstance(data[2], dict)
    require(ok, f"{path}: expected AttnGAN's [train, test, ixtoword, wordtoix] captions.pickle")
    ixtoword: dict[Any, Any] = data[2]
    n = len(ixtoword)
    require(
        set(ixtoword) == set(range(n)) and all(isinstance(w, str) for w in ixtoword.values()),
        f"{path}: ixtoword is not a map of ids 0..{n - 1} to words",
    )
    return [ixtoword[i] for i in range(n)]


def ganzoo_vocabulary(task: Any) -> tuple[list[str], str]:
    """(ganzoo's vocabulary of the task's data, where it came from): the adapter's own word list
    (data=synthetic) or the captions*.json that `ganzoo.data.prepare` / training wrote."""
    data = task.run_config["data"]  # the resolved config ganzoo.convert built the task from
    name, dataset = data["name"], data["dataset"]
    module, cls = str(dataset["_target_"]).rsplit(".", 1)
    words = getattr(getattr(importlib.import_module(module), cls), "vocab", None)
    if isinstance(words, tuple | list):  # an adapter with a fixed word list (synthetic scenes)
        return [str(w) for w in words], f"data={name}'s word list"
    cache = dataset["cache_dir"]  # caption datasets: captions*.json written by prepare / training
    tables = sorted(Path(str(cache)).glob("captions*.json"))
    require(
        bool(tables),
        f"data={name}: ganzoo's vocabulary is not prepared (no captions*.json in {cache}); run "
        f"`python -m ganzoo.data.prepare data={name}` first (the text encoder's word rows are "
        "reordered into it)",
    )
    for table in tables:
        words = json.loads(table.read_text()).get("words")
        if isinstance(words, list):
            return [str(w) for w in words], str(table)
    raise ConvertError(f"data={name}: {tables[0]} holds no vocabulary")


def word_order(official: list[str], ours: list[str], source: Path, where: str) -> list[int]:
    """For each of ganzoo's word ids, the official id of the same word (0: the padding)."""
    require(
        len(official) == len(ours),
        f"the source vocabulary ({source.name}) has {len(official)} words; ganzoo's ({where}) "
        f"{len(ours)}",
    )
    index = {w: i for i, w in enumerate(official)}
    only_ours = [w for w in ours[1:] if w not in index]
    if only_ours:
        only_theirs = sorted(set(official[1:]) - set(ours[1:]))
        raise ConvertError(
            f"the source vocabulary ({source.name}) differs from ganzoo's ({where}): "
            f"{len(only_ours)} words only in ganzoo's (e.g. {only_ours[0]!r}), "
            f"{len(only_theirs)} only in the source"
            + (f" (e.g. {only_theirs[0]!r})" if only_theirs else "")
        )
    return [0] + [index[w] for w in ours[1:]]


def text_encoder_state(path: Path, encoder: nn.Module, order: list[int]) -> dict[str, Tensor]:
    """RNN_ENCODER -> TextEncoder (same names); embedding rows in ganzoo's word order."""
    state = load_torch(path)
    require(isinstance(state, dict), f"{path}: not a state dict")
    own = encoder.state_dict()
    emb = state.get("encoder.weight")
    require(emb is not None, f"{path}: no encoder.weight (not an AttnGAN text encoder)")
    assert emb is not None
    n_words, dim = own["encoder.weight"].shape
    require(
        emb.shape[0] == n_words,
        f"source text encoder has {emb.shape[0]} words; data.vocab_size={n_words}",
    )
    hh = state.get("rnn.weight_hh_l0")
    require(hh is not None, f"{path}: no rnn.weight_hh_l0 (not an AttnGAN text encoder)")
    assert hh is not None
    require(hh.shape[0] == 4 * hh.shape[1], f"{path}: a GRU text encoder (ganzoo's is the LSTM)")
    hidden = own["rnn.weight_hh_l0"].shape[1]
    require(
        hh.shape[1] == hidden,
        f"source text features {2 * hh.shape[1]}; model.damsm.text_encoder.embedding_dim="
        f"{2 * hidden}",
    )
    check_shape("encoder.weight", emb.shape, (n_words, dim))
    out = dict(state)
    out["encoder.weight"] = emb[order]
    return out


def image_encoder_state(path: Path, encoder: nn.Module) -> dict[str, Tensor]:
    """CNN_ENCODER -> ImageEncoder: the Inception layers under `backbone.`."""
    state = load_torch(path)
    require(isinstance(state, dict), f"{path}: not a state dict")
    require("emb_cnn_code.weight" in state, f"{path}: no emb_cnn_code (not a DAMSM image encoder)")
    ours = encoder.state_dict()
    nef = ours["emb_cnn_code.weight"].shape[0]
    require(
        state["emb_cnn_code.weight"].shape[0] == nef,
        f"source image features {state['emb_cnn_code.weight'].shape[0]}; "
        f"model.damsm.text_encoder.embedding_dim={nef}",
    )
    out = {("backbone." + k if _BACKBONE.match(k) else k): v for k, v in state.items()}
    return with_batch_counters(out, ours)


def with_batch_counters(state: dict[str, Tensor], own: dict[str, Tensor]) -> dict[str, Tensor]:
    """BatchNorm num_batches_tracked (absent from files of PyTorch < 0.4) set to 0."""
    for key, value in own.items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = value.new_zeros(())
    return state


def encoders(
    source: Path, text_encoder: nn.Module, image_encoder: nn.Module, task: Any, prefix: str
) -> tuple[dict[str, Tensor], list[Path], list[str], list[str]]:
    """(state under `prefix` + text_encoder. / image_encoder., files read, absent prefixes,
    notes) of a folder holding text_encoder*.pth, [image_encoder*.pth] and captions.pickle."""
    text = find(source, "text_encoder*.pth", "DAMSM text encoder")
    vocab_file = find(source, "captions.pickle", "vocabulary")
    image = find(source, "image_encoder*.pth", "DAMSM image encoder", required=False)
    assert text is not None and vocab_file is not None
    official = official_vocabulary(vocab_file)
    n_words = text_encoder.state_dict()["encoder.weight"].shape[0]
    require(
        len(official) == n_words,
        f"the source vocabulary ({vocab_file.name}) has {len(official)} words; "
        f"data.vocab_size={n_words}",
    )
    ours, where = ganzoo_vocabulary(task)
    order = word_order(official, ours, vocab_file, where)
    notes = []
    if order != list(range(len(order))):
        notes.append(f"text encoder word rows reordered from {vocab_file.name} to {where}")
    state = {
        f"{prefix}text_encoder.{k}": v
        for k, v in text_encoder_state(text, text_encoder, order).items()
    }
    files = [text, vocab_file]
    absent: list[str] = []
    if image is None:
        absent.append(f"{prefix}image_encoder.")
        notes.append("no image_encoder*.pth: the DAMSM image encoder keeps its initialisation")
    else:
        files.append(image)
        state.update(
            {
                f"{prefix}image_encoder.{k}": v
                for k, v in image_encoder_state(image, image_encoder).items()
            }
        )
    return state, files, absent, notes


def convert(source: Path, task: Any) -> Converted:
    """model=damsm: the encoders of pretrain_DAMSM.py (the task's `generator` is the DAMSM)."""
    damsm = task.generator
    state, files, absent, notes = encoders(
        source, damsm.text_encoder, damsm.image_encoder, task, "generator."
    )
    return Converted(state=state, sources=files, absent=tuple(absent), notes=notes)
