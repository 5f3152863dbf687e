"""Golden fixtures of taoxugit/AttnGAN for tests/test_official_attngan.py and
tests/test_parity_attngan.py (issues 13 and 14).

    python experiments/parity/attngan.py /path/to/AttnGAN [--out tests/golden/attngan]

Runs the official code (imported from the checkout's code/ folder; nothing of it is copied
here) on the CPU at a small configuration of the bird_attn2 structure: 2 stages (64, 128),
GF_DIM 2, DF_DIM 2, Z_DIM 8, CONDITION_DIM 4, R_NUM 1, EMBEDDING_DIM 8 (text LSTM 2 x 4 on 300-d
word vectors), a 12-word vocabulary, WORDS_NUM 6, batch 4, LAMBDA 5, GAMMA 4 / 5 / 10, Adam 2e-4
(0.5, 0.999). The checkout needs the Python 3 edits listed in README (.data[0] -> .item(),
next(data_iter), uint8 -> bool masks, no cuda.set_device on the CPU); modules the official code
imports but these runs never use (easydict, six, skimage, nltk, pandas) are stubbed when absent.

The official CNN_ENCODER loads ImageNet Inception-v3 weights from a URL; `model_zoo.load_url`
is replaced by tests/golden/attngan/stand_in_inception.py (weights that are a function of each
key's name), so the fixture stores only the image encoder's trained layers.

Steps (seed 0):
1. DAMSM encoders as pretrain_DAMSM.py builds them (RNN_ENCODER(12, nhidden=8),
   CNN_ENCODER(8)), saved as text_encoder200.pth / image_encoder200.pth; captions.pickle
   ([train captions, test captions, ixtoword, wordtoix], protocol 2, as datasets.py writes it).
2. condGANTrainer(...).train() for one epoch of 3 batches: its build_models (weights_init of
   G_NET, D_NET64, D_NET128; the encoders loaded from step 1), G once per iteration, the D
   steps, the G step, the 0.999 average; it saves netG_epoch_0.pth (the average, as every
   official netG file) and netD0.pth, netD1.pth. The random-init G and D are saved before.
3. forward.pt: official outputs of the trained files in eval and train mode.

It writes:
  init/netG_epoch_0.pth, init/netD0.pth, init/netD1.pth   the official random init
  init/text_encoder200.pth, captions.pickle               the DAMSM text encoder, vocabulary
  image_encoder_trained.pth   emb_features / emb_cnn_code of image_encoder200.pth (the rest is
        the stand-in Inception: tests rebuild the full official file from both)
  trained/netG_epoch_0.pth, trained/netD0.pth, trained/netD1.pth   saved by train()
  train.pt     the 3 batches (as the data loader gave them, unsorted), the draws the official
        code consumed (z, then the CA noise, per iteration), G's raw parameters after training
  forward.pt   fixed inputs and the official outputs: G stages, attention maps, mu, logvar (the
        trained average G, eval and train mode); D logits; text and image encoder outputs
  README.md    repository, commit, configuration, command
"""

from __future__ import annotations

import argparse
import importlib.util
import pickle
import shutil
import subprocess
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
SEED = 0
BATCH = 4
STRIDE = 4  # forward.pt keeps every 4th pixel of G's images and attention maps
WORDS = ["<end>", *"a bird with red wings small blue has long beak this".split()]
CONFIG: dict[str, Any] = {
    "TREE.BRANCH_NUM": 2,
    "GAN.GF_DIM": 2,
    "GAN.DF_DIM": 2,
    "GAN.Z_DIM": 8,
    "GAN.CONDITION_DIM": 4,
    "GAN.R_NUM": 1,
    "TEXT.EMBEDDING_DIM": 8,
    "TEXT.WORDS_NUM": 6,
    "TRAIN.BATCH_SIZE": BATCH,
    "TRAIN.MAX_EPOCH": 1,
    "TRAIN.SNAPSHOT_INTERVAL": 50,
    "TRAIN.SMOOTH.GAMMA1": 4.0,
    "TRAIN.SMOOTH.GAMMA2": 5.0,
    "TRAIN.SMOOTH.GAMMA3": 10.0,
    "TRAIN.SMOOTH.LAMBDA": 5.0,
    "TRAIN.DISCRIMINATOR_LR": 2e-4,
    "TRAIN.GENERATOR_LR": 2e-4,
    "CUDA": False,
}
# per iteration: caption lengths (a tie in the first) and class ids (a shared class)
LENGTHS = [[3, 6, 4, 6], [5, 2, 6, 4], [4, 5, 3, 6]]
CLASSES = [[3, 1, 3, 2], [0, 0, 1, 2], [5, 4, 4, 1]]


def stub_missing_modules() -> None:
    """Empty stand-ins for modules the official files import but these runs never call."""

    class EasyDict(dict):  # type: ignore[type-arg]
        def __getattr__(self, name: str) -> Any:
            try:
                return self[name]
            except KeyError:
                raise AttributeError(name) from None

        def __setattr__(self, name: str, value: Any) -> None:
            self[name] = value

    stubs: dict[str, dict[str, Any]] = {
        "easydict": {"EasyDict": EasyDict},
        "six": {},
        "six.moves": {"range": range},
        "skimage": {},
        "skimage.transform": {},
        "nltk": {},
        "nltk.tokenize": {"RegexpTokenizer": object},
        "pandas": {},
    }
    for name, attrs in stubs.items():
        try:
            __import__(name)
        except ImportError:
            module = types.ModuleType(name)
            module.__dict__.update(attrs)
            sys.modules[name] = module
            if "." in name:
                parent, child = name.rsplit(".", 1)
                setattr(sys.modules[parent], child, module)


def stand_in_inception() -> dict[str, torch.Tensor]:
    path = REPO / "tests" / "golden" / "attngan" / "stand_in_inception.py"
    spec = importlib.util.spec_from_file_location("stand_in_inception", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.stand_in_inception()  # type: ignore[no-any-return]


def set_cfg(cfg: Any, values: dict[str, Any]) -> None:
    for dotted, value in values.items():
        node = cfg
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value


def images(rng: np.random.Generator) -> list[np.ndarray]:
    """BATCH 128x128 uint8 RGB images: 16x16 random patterns in 8x8 blocks (they compress)."""
    out = []
    for _ in range(BATCH):
        small = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        big = Image.fromarray(small).resize((128, 128), Image.Resampling.NEAREST)
        out.append(np.asarray(big, np.uint8))
    return out


def official_stages(arrays: list[np.ndarray], sizes: list[int]) -> list[torch.Tensor]:
    """datasets.py get_imgs: transforms.Scale (Resize) for all but the last stage, then
    ToTensor + Normalize(0.5, 0.5), stacked over the batch."""
    import torchvision.transforms as T

    norm = T.Compose([T.ToTensor(), T.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
    stages = []
    for i, size in enumerate(sizes):
        per = []
        for a in arrays:
            img = Image.fromarray(a)
            if i < len(sizes) - 1:
                img = T.Resize(size)(img)
            per.append(norm(img))
        stages.append(torch.stack(per))
    return stages


def make_batches(rng: np.random.Generator) -> list[dict[str, Any]]:
    batches = []
    for lengths, classes in zip(LENGTHS, CLASSES, strict=True):
        arrays = images(rng)
        tokens = np.zeros((BATCH, CONFIG["TEXT.WORDS_NUM"]), np.int64)
        for i, n in enumerate(lengths):
            tokens[i, :n] = rng.integers(1, len(WORDS), n)
        batches.append(
            {
                "uint8": torch.from_numpy(np.stack(arrays)),
                "stages": official_stages(arrays, [64, 128]),
                "tokens": torch.from_numpy(tokens),
                "lengths": torch.tensor(lengths),
                "class_ids": torch.tensor(classes),
            }
        )
    return batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", type=Path, help="taoxugit/AttnGAN checkout (edited for Py3)")
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "golden" / "attngan")
    args = parser.parse_args()
    code = args.checkout.resolve() / "code"
    out: Path = args.out
    for sub in ("init", "trained"):
        (out / sub).mkdir(parents=True, exist_ok=True)

    stub_missing_modules()
    sys.path.insert(0, str(code))
    from miscc.config import cfg  # type: ignore[import-not-found]

    set_cfg(cfg, CONFIG)
    import model as official_model  # type: ignore[import-not-found]
    import trainer as official_trainer  # type: ignore[import-not-found]

    inception = stand_in_inception()
    official_model.model_zoo.load_url = lambda url, *a, **k: inception  # no download
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    work = Path(tempfile.mkdtemp(prefix="attngan_golden_"))

    # 1. DAMSM encoders and vocabulary, in the official formats
    n_words, nef = len(WORDS), CONFIG["TEXT.EMBEDDING_DIM"]
    text_encoder = official_model.RNN_ENCODER(n_words, nhidden=nef)
    image_encoder = official_model.CNN_ENCODER(nef)
    torch.save(text_encoder.state_dict(), out / "init" / "text_encoder200.pth")
    torch.save(image_encoder.state_dict(), work / "image_encoder200.pth")
    trained_layers = {
        k: v for k, v in image_encoder.state_dict().items() if k.startswith("emb_")
    }
    torch.save(trained_layers, out / "image_encoder_trained.pth")
    ixtoword = dict(enumerate(WORDS))
    wordtoix = {w: i for i, w in ixtoword.items()}
    with open(out / "captions.pickle", "wb") as f:
        pickle.dump([[[1, 2]], [[3, 4]], ixtoword, wordtoix], f, protocol=2)
    # build_models reads the image encoder from NET_E with "text" -> "image" in the name
    shutil.copy(out / "init" / "text_encoder200.pth", work / "text_encoder200.pth")
    set_cfg(cfg, {"TRAIN.NET_E": str(work / "text_encoder200.pth")})

    # 2. three official training iterations
    batches = make_batches(rng)
    loader = []
    for b in batches:
        loader.append(
            [
                [s.clone() for s in b["stages"]],
                b["tokens"].clone().unsqueeze(2),  # (N, WORDS_NUM, 1) as get_caption
                b["lengths"].clone(),
                b["class_ids"].clone(),
                [f"key{i}" for i in range(BATCH)],
            ]
        )
    draws: list[dict[str, torch.Tensor]] = []
    nets: dict[str, Any] = {}
    build = official_trainer.condGANTrainer.build_models

    def build_models(self: Any) -> Any:
        text_enc, image_enc, net_g, nets_d, epoch = build(self)
        torch.save(net_g.state_dict(), out / "init" / "netG_epoch_0.pth")
        for i, d in enumerate(nets_d):
            torch.save(d.state_dict(), out / "init" / f"netD{i}.pth")
        forward = net_g.forward

        def recorded(noise: torch.Tensor, *rest: Any) -> Any:
            draws.append({"z": noise.detach().clone(), "rng": torch.get_rng_state()})
            return forward(noise, *rest)

        net_g.forward = recorded
        nets.update(G=net_g, D=nets_d, text=text_enc, image=image_enc)
        return text_enc, image_enc, net_g, nets_d, epoch

    official_trainer.condGANTrainer.build_models = build_models
    trainer = official_trainer.condGANTrainer(str(work), loader, n_words, ixtoword)
    trainer.train()
    c_dim = CONFIG["GAN.CONDITION_DIM"]
    for d in draws:  # the CA noise is G's first draw after z (CA_NET.reparametrize)
        torch.set_rng_state(d.pop("rng"))
        d["ca_noise"] = torch.FloatTensor(BATCH, c_dim).normal_()
    for name in ("netG_epoch_0.pth", "netD0.pth", "netD1.pth"):
        shutil.copy(work / "Model" / name, out / "trained" / name)
    net_g = nets["G"]
    del net_g.forward
    torch.save(
        {
            "batches": [
                {k: b[k] for k in ("tokens", "lengths", "class_ids")} for b in batches
            ],
            "draws": draws,
            "G": {k: v.clone() for k, v in net_g.state_dict().items()},
            "config": CONFIG,
        },
        out / "train.pt",
    )

    np.savez_compressed(
        out / "images.npz", **{f"batch{i}": b["uint8"].numpy() for i, b in enumerate(batches)}
    )

    # 3. forward outputs of the trained files
    torch.manual_seed(SEED + 1)
    tokens = torch.tensor(
        [[1, 2, 3, 4, 5, 6], [11, 2, 8, 9, 10, 0], [1, 7, 2, 0, 0, 0], [3, 4, 0, 0, 0, 0]]
    )
    lengths = torch.tensor([6, 5, 3, 2])  # sorted, as the packed official encoder needs
    text_encoder = nets["text"].eval()
    image_encoder = nets["image"].eval()
    with torch.no_grad():
        words, sentence = text_encoder(tokens, lengths, text_encoder.init_hidden(BATCH))
        mask = (tokens == 0)[:, : words.shape[2]]
        g = official_model.G_NET()
        g.load_state_dict(torch.load(out / "trained" / "netG_epoch_0.pth"))
        z = torch.randn(BATCH, CONFIG["GAN.Z_DIM"])
        outputs: dict[str, Any] = {}
        eps = {}
        for mode in ("eval", "train"):
            g.train(mode == "train")
            state = torch.get_rng_state()
            fakes, maps, mu, logvar = g(z, sentence, words, mask)
            after = torch.get_rng_state()
            torch.set_rng_state(state)  # replay CA_NET's draw
            eps[mode] = torch.FloatTensor(BATCH, c_dim).normal_()
            torch.set_rng_state(after)
            outputs[f"G/{mode}"] = {  # every 4th pixel of the images and maps (size)
                "images": [x[:, :, ::STRIDE, ::STRIDE].clone() for x in fakes],
                "maps": [m[:, :, ::STRIDE, ::STRIDE].clone() for m in maps],
                "mu": mu, "logvar": logvar,
            }  # fmt: skip
        reals = batches[0]["stages"]
        d_out = {}
        for i in range(2):
            d = official_model.D_NET64() if i == 0 else official_model.D_NET128()
            d.load_state_dict(torch.load(out / "trained" / f"netD{i}.pth"))
            for mode in ("eval", "train"):
                d.train(mode == "train")
                for which, x in (("batch0", reals[i]), ("batch1", batches[1]["stages"][i])):
                    h = d(x)
                    d_out[f"D{i}/{mode}/{which}"] = (
                        d.UNCOND_DNET(h), d.COND_DNET(h, sentence)
                    )
        regions, code = image_encoder(reals[0][:2])
    torch.save(
        {
            "tokens": tokens,
            "lengths": lengths,
            "z": z,
            "ca_noise": eps,
            "words": words,
            "sentence": sentence,
            "G": outputs,
            "D": d_out,
            "image_encoder": {"regions": regions, "code": code},  # of batch 0's first two
        },
        out / "forward.pt",
    )
    write_readme(args.checkout.resolve(), out)
    print(f"wrote {out}")


def write_readme(checkout: Path, out: Path) -> None:
    git = ["git", "-C", str(checkout), "rev-parse", "HEAD"]
    try:
        commit = subprocess.run(git, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "0d000e652b407e976cb88fab299e8566f3de8a37 (archive; git metadata absent)"
    (out / "README.md").write_text(README.format(commit=commit, torch=torch.__version__,
                                                 config=CONFIG, words=WORDS))


README = """# Golden fixtures: AttnGAN (taoxugit/AttnGAN)

Made by `experiments/parity/attngan.py` from the official code on the CPU (torch {torch}):

    python experiments/parity/attngan.py /path/to/AttnGAN --out tests/golden/attngan

- repository: https://github.com/taoxugit/AttnGAN, commit {commit}
- edits for Python 3 / torch 2 on the CPU (in the checkout, not here):
  code/trainer.py: `.data[0]` -> `.item()`, `data_iter.next()` -> `next(data_iter)`,
  `torch.cuda.set_device` only with cfg.CUDA; code/miscc/losses.py: `.data[0]` -> `.item()`,
  `torch.ByteTensor(masks)` -> `torch.BoolTensor(masks.astype(bool))` (masked_fill needs bool).
  Nothing else changed: the GlobalAttention mask (`mask.repeat(queryL, 1)`), the sort by caption
  length, the losses and the 0.999 average run as released.
- config (cfg overrides of bird_attn2.yml's structure): {config}
- vocabulary: {words}; seed 0 (torch.manual_seed; numpy default_rng(0) for the batches)
- Inception-v3 of the image encoder: the stand-in weights of `stand_in_inception.py` (the
  official code downloads ImageNet weights); the fixture keeps only the image encoder's own
  layers (`image_encoder_trained.pth`: emb_features, emb_cnn_code); the tests rebuild the full
  official-format `image_encoder200.pth` from both (90 MB, not stored).

Files: `init/` (the official random-init netG_epoch_0.pth, netD0.pth, netD1.pth and the
DAMSM text_encoder200.pth), `captions.pickle` (the vocabulary file in datasets.py's format),
`trained/` (what condGANTrainer.train() saved after 3 iterations: netG_epoch_0.pth holds the
0.999 average of G's parameters with G's BatchNorm statistics, as every official netG file),
`train.pt` (the batches as the loader gave them, unsorted: tokens, lengths, class ids; per
iteration the z and CA noise the official code drew;
G's raw state after training), `forward.pt` (fixed captions, z, CA noise; the official outputs of
the trained files: G's stage images and attention maps (every 4th pixel), mu, logvar in eval and
train mode; each D's unconditional and conditional logits on the stage images of batches 0 and
1; the text encoder's word and sentence features; the image encoder's regions and code on the
first two 64x64 images of batch 0), `images.npz` (the batches' 128x128 uint8 images; the stage
tensors are datasets.py's Resize / ToTensor / Normalize of them).

Made with one CPU thread (OMP_NUM_THREADS=1): tests/test_parity_attngan.py, also on one
thread, finds ganzoo's G, EMA G and D's after the 3 iterations bitwise equal to these.
"""

if __name__ == "__main__":
    main()
