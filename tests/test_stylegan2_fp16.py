"""StyleGAN2's mixed precision as the official: float16 in the num_fp16_res highest blocks.

On the CPU the networks stay float32 (and say so once); the float16 path itself is run here on
the CPU by forcing the blocks' dtype, which checks the casts (float32 parameters, styles, RGB
sum and D epilogue; float16 activations clamped) and that the result follows float32 closely.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from ganzoo.models import stylegan2
from ganzoo.models.stylegan2 import Discriminator, Generator, fp16_resolutions

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = dict(z_dim=16, w_dim=16, mapping_layers=2, channel_base=256, channel_max=16)


def test_fp16_blocks_are_the_highest_resolutions_as_the_official() -> None:
    assert fp16_resolutions(1024, 4) == {128, 256, 512, 1024}
    assert fp16_resolutions(32, 4) == {8, 16, 32}  # never below 8x8
    assert fp16_resolutions(256, 0) == set()
    g = Generator(32, num_fp16_res=2, **SMALL)
    assert [g.synthesis.b4.use_fp16, g.synthesis.b8.use_fp16, g.synthesis.b16.use_fp16] == [
        False,
        False,
        True,
    ]
    d = Discriminator(32, channel_base=256, channel_max=16, num_fp16_res=1)
    assert [d.b32.use_fp16, d.b16.use_fp16, d.b8.use_fp16] == [True, False, False]
    plain = Generator(32, **SMALL)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(g) == count(plain)  # no parameters of its own


def test_on_the_cpu_fp16_blocks_stay_float32_and_say_so_once() -> None:
    torch.manual_seed(0)
    g16 = Generator(32, num_fp16_res=4, **SMALL)
    g32 = Generator(32, **SMALL)
    g32.load_state_dict(g16.state_dict())
    d16 = Discriminator(32, channel_base=256, channel_max=16, num_fp16_res=4)
    d32 = Discriminator(32, channel_base=256, channel_max=16)
    d32.load_state_dict(d16.state_dict())
    z = torch.randn(2, 16)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        for _ in range(3):
            a = g16(z, noise_mode="const")
            la = d16(a)
    assert len(caught) == 1 and "float32" in str(caught[0].message)
    b = g32(z, noise_mode="const")
    assert a.dtype == torch.float32 and torch.equal(a, b) and torch.equal(la, d32(b))


@pytest.mark.filterwarnings("ignore:StyleGAN2")
def test_forced_float16_blocks_follow_float32(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    g = Generator(32, num_fp16_res=2, **SMALL)
    d = Discriminator(32, channel_base=256, channel_max=16, num_fp16_res=2)
    z = torch.randn(2, 16)
    ref_img = g(z, noise_mode="const")
    ref_logits = d(ref_img)
    force = lambda use_fp16, x: torch.float16 if use_fp16 else torch.float32  # noqa: E731
    monkeypatch.setattr(stylegan2, "block_dtype", force)
    seen: dict[str, torch.dtype] = {}
    for name, module in [("g16", g.synthesis.b16.conv1), ("g8", g.synthesis.b8.conv1),
                         ("d32", d.b32.conv0), ("d8", d.b8.conv0)]:  # fmt: skip
        module.register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, o.dtype))
    img = g(z, noise_mode="const")
    logits = d(img)
    assert seen == {"g16": torch.float16, "g8": torch.float32, "d32": torch.float16,
                    "d8": torch.float32}  # fmt: skip
    assert img.dtype == logits.dtype == torch.float32
    torch.testing.assert_close(img, ref_img, rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(logits, ref_logits, rtol=2e-2, atol=2e-2)
    logits.sum().backward()  # gradients reach the float32 parameters through float16 blocks
    grad = g.synthesis.b32.conv1.weight.grad
    assert grad is not None and grad.dtype == torch.float32 and torch.isfinite(grad).all()
