"""Golden fixture for EditGAN's LPIPS (tests/golden/editgan/): the official network
(nv-tlabs/editGAN_release lpips/networks_basic.py PNetLin, 'net-lin', VGG16, version 0.1, with
the repository's lpips/weights/v0.1/vgg.pth) on fixed inputs.

    python experiments/parity/editgan.py /path/to/editGAN_release

The VGG16 weights are not stored (58 MB): both sides draw them from `vgg16_weights()` (seeded
normal tensors in torchvision's layout), so the fixture is a few kB. The official package needs
skimage / IPython only for functions not used here; the script loads networks_basic.py and
pretrained_networks.py alone. Run with the official checkout on sys.path; tests never import it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import types
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parents[2] / "tests" / "golden" / "editgan"
VGG16_CONVS = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
               (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]  # fmt: skip
VGG16_INDICES = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]  # conv layers of `features`


def vgg16_weights(seed: int = 0) -> dict[str, torch.Tensor]:
    """A torchvision-layout vgg16 `features` state dict of seeded N(0, sqrt(2 / fan_in)) weights."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for index, (c_in, c_out) in zip(VGG16_INDICES, VGG16_CONVS, strict=True):
        std = (2.0 / (c_in * 9)) ** 0.5
        state[f"features.{index}.weight"] = torch.randn(c_out, c_in, 3, 3, generator=g) * std
        state[f"features.{index}.bias"] = torch.randn(c_out, generator=g) * 0.01
    return state


def _official(root: Path) -> types.ModuleType:
    """lpips/networks_basic.py of the checkout, without its unused skimage / IPython imports."""
    package = types.ModuleType("lpips")
    package.__path__ = [str(root / "lpips")]
    package.normalize_tensor = lambda x, eps=1e-10: x / (x.square().sum(1, True).sqrt() + eps)
    sys.modules["lpips"] = package
    sys.modules.setdefault("IPython", types.SimpleNamespace(embed=None))  # type: ignore[arg-type]
    skimage = types.ModuleType("skimage")
    skimage.color = None  # type: ignore[attr-defined]
    sys.modules.setdefault("skimage", skimage)
    for name in ("pretrained_networks", "networks_basic"):
        path = root / "lpips" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(f"lpips.{name}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[f"lpips.{name}"] = module
        spec.loader.exec_module(module)
    return sys.modules["lpips.networks_basic"]


def main(root: Path) -> None:
    basic = _official(root)
    net = basic.PNetLin(pnet_rand=True, pnet_type="vgg", version="0.1", use_dropout=True).eval()
    lin_file = root / "lpips" / "weights" / "v0.1" / "vgg.pth"
    lin = torch.load(lin_file, map_location="cpu", weights_only=True)
    net.load_state_dict(lin, strict=False)
    vgg = vgg16_weights()
    for k in range(1, 6):
        block = getattr(net.net, f"slice{k}")
        block.load_state_dict({n: vgg[f"features.{n}"] for n in block.state_dict()})
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 3, 64, 64, generator=g) * 2 - 1
    y = torch.rand(3, 3, 64, 64, generator=g) * 2 - 1
    with torch.no_grad():
        distance = net(x, y).flatten()
    OUT.mkdir(parents=True, exist_ok=True)
    torch.save({"x": x, "y": y, "lin": lin, "distance": distance}, OUT / "forward.pt")
    commit = (root / ".git_commit").read_text().strip() if (root / ".git_commit").exists() else "?"
    (OUT / "README.md").write_text(
        "# EditGAN golden fixture\n\n"
        "Made by `python experiments/parity/editgan.py <editGAN_release checkout>` from\n"
        f"nv-tlabs/editGAN_release commit {commit}:\nlpips/networks_basic.py PNetLin('vgg', "
        "version 0.1, net-lin) with the repository's lpips/weights/v0.1/vgg.pth (SHA-256\n"
        f"{hashlib.sha256(lin_file.read_bytes()).hexdigest()}) and VGG16 weights drawn by\n"
        "`vgg16_weights()` of that script (not stored). forward.pt: inputs x, y (3, 3, 64,\n"
        "64) in [-1, 1], the lin weights and the official distances. Checked by\n"
        "tests/test_editgan.py.\n"
    )
    print(distance)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
