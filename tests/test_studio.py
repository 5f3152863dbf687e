"""ganzoo studio in a real browser: headless Chromium driven by Playwright's Python API
(Debian's chromium as the browser) on checkpoints trained here; screenshots of each page go to
the test's folder (and to $GANZOO_STUDIO_SHOTS when set, which is how docs/studio/ is made)."""

from __future__ import annotations

import io
import os
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganzoo.cli.build import train
from ganzoo.core.errors import ConfigError
from tests.conftest import compose_train

gr = pytest.importorskip("gradio", reason="the studio extra is not installed")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

from ganzoo.cli import interactive  # noqa: E402
from ganzoo.sample import main_fn as sample_main  # noqa: E402
from ganzoo.studio import app  # noqa: E402
from ganzoo.studio.common import image as interactive_image  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (.ci/run installs it)"),
]
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
         "--disable-background-networking", "--disable-component-update"]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory, one_thread: None):
    """(page, served checkpoints, root, requested URLs) with SPADE, StyleGAN2, StarGAN and
    EditGAN (on that StyleGAN2) smoke runs."""
    root = tmp_path_factory.mktemp("studio")
    ckpts = []
    # SPADE: 12 fast steps without EMA, so that its images already depend on the labels
    runs = {"spade": ["steps=12", "model.ema.decay=0", "optim.lr_g=0.01"],
            "stylegan2": ["steps=2"], "stargan": ["steps=2"]}  # fmt: skip
    for model, extra in runs.items():
        train(compose_train(root / model, [f"model={model}", "debug=smoke", "logger=csv", *extra]))
        ckpts.append(root / model / "checkpoints" / "last.ckpt")
    editgan = ["model=editgan", "debug=smoke", "logger=csv", "model.lpips.untrained_stand_in=true",
               f"model.stylegan2_ckpt={ckpts[1]}"]  # fmt: skip
    train(compose_train(root / "editgan", editgan))
    ckpts.append(root / "editgan" / "checkpoints" / "last.ckpt")
    served = app.load(ckpts, "cpu", root / "work")
    demo = app.build_app(served)
    port = _free_port()
    app.launch(demo, "127.0.0.1", port, block=False)
    requested: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("request", lambda r: requested.append(r.url))
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector("#paint-canvas canvas", timeout=60_000)
        yield page, served, root, requested
        browser.close()
    demo.close()


def _pixels(x: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [-1, 1] -> (H, W, 3) int, rounded as the studio and ganzoo.sample save it."""
    return interactive_image(x).astype(int)


def _stroke(page, prefix: str, klass: str) -> None:
    """Pick `klass` in the page's class list, take the brush and paint a short diagonal stroke
    across the middle of its canvas (#<prefix>-class, #<prefix>-canvas or #<prefix>-mask)."""
    page.locator(f"#{prefix}-class input").click()
    page.get_by_role("option", name=klass).click()
    page.wait_for_timeout(2500)  # the server sends the brush of the new class back
    editor = page.locator(f"#{prefix}-canvas, #{prefix}-mask")
    editor.locator("button[aria-label=Brush]").click()
    page.wait_for_timeout(500)
    box = editor.locator("canvas").first.bounding_box()
    x0, y0 = box["x"] + box["width"] / 2 - 30, box["y"] + box["height"] / 2
    page.mouse.move(x0, y0)
    page.mouse.down()
    for i in range(12):
        page.mouse.move(x0 + 5 * i, y0 + 2 * i)
    page.mouse.up()


def _wait_for_class(path: Path, label: int, timeout: float = 90.0) -> np.ndarray:
    """The label map the Paint page wrote, once it holds `label` (renders arrive in order, the
    stroke's after any earlier one)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file():
            labels = np.array(Image.open(path))
            if (labels == label).sum() > 10:
                return labels
        time.sleep(0.25)
    raise AssertionError(f"no render of a label map with class {label} within {timeout} s")


def _shot(page, root: Path, name: str) -> None:
    path = root / f"studio_{name}.png"
    page.screenshot(path=str(path))
    if os.environ.get("GANZOO_STUDIO_SHOTS"):
        shutil.copy(path, Path(os.environ["GANZOO_STUDIO_SHOTS"]) / path.name)


def test_paint_renders_the_stroke_as_ganzoo_sample_does(studio, tmp_path: Path) -> None:
    page, served, root, requested = studio
    spade = served[0]
    assert not (spade.work_dir / "image.png").exists()  # nothing written before the first stroke
    _stroke(page, "paint", "8: circle")
    labels = _wait_for_class(spade.work_dir / "label_map.png", 8)  # rendered after the stroke
    assert (labels == 0).sum() > 0  # the stroke, on the sky fill
    _shot(page, root, "paint")
    shown = np.array(Image.open(spade.work_dir / "image.png")).astype(int)

    # the image changed where the stroke is (against the same canvas without it)
    blank = interactive.render(spade.task, torch.zeros(labels.shape, dtype=torch.long))
    before = _pixels(blank[0])
    change = np.abs(shown - before).sum(-1)
    stroke = labels == 8
    assert change[stroke].mean() > 2 * change[~stroke].mean()

    # ganzoo.sample on the downloaded label map gives the same pixels
    label_png = spade.work_dir / "label_map.png"
    overrides = [f"ckpt={spade.path}", f"label_map={label_png}", f"output={tmp_path}"]
    sample_main(compose_train(tmp_path, overrides, config_name="sample"))
    assert np.array_equal(np.array(Image.open(tmp_path / "label_map_0.png")).astype(int), shown)
    assert {u.split("/")[2] for u in requested} <= {page.url.split("/")[2]}  # nothing off-machine


def test_explore_changes_with_the_seed(studio) -> None:
    page, served, root, _ = studio
    page.get_by_role("tab", name="Explore").click()
    page.locator("#explore-generate").click()

    def shown() -> np.ndarray:
        page.wait_for_timeout(300)
        page.wait_for_function(
            "document.querySelector('#explore-output img') !== null", timeout=60_000
        )
        src = page.locator("#explore-output img").get_attribute("src")
        body = page.request.get(src).body()
        return np.array(Image.open(io.BytesIO(body)).convert("RGB")).astype(int)

    page.wait_for_timeout(2000)
    a = shown()
    expected = interactive.generate(served[1].task, [0], 1.0, None)
    assert np.abs(a - _pixels(expected[0])).max() == 0  # the PNG shown is the generated image
    page.locator("#explore-seed input").fill("7")
    page.locator("#explore-generate").click()
    page.wait_for_timeout(2500)
    b = shown()
    assert np.abs(a - b).mean() > 1.0
    _shot(page, root, "explore")


def test_translate_page_and_errors(studio, tmp_path: Path) -> None:
    page, served, root, _ = studio
    page.get_by_role("tab", name="Translate").click()
    face = tmp_path / "face.png"
    Image.fromarray((np.random.default_rng(0).random((40, 40, 3)) * 255).astype(np.uint8)).save(
        face
    )
    page.locator("#translate-input input[type=file]").set_input_files(str(face))
    page.wait_for_selector("#translate-output img", timeout=60_000)
    page.wait_for_timeout(1000)
    assert page.locator("#translate-output img").count() >= 2  # input + targets
    _shot(page, root, "translate")

    # a checkpoint the studio cannot serve is one line
    class NoPage:
        def required_fields(self) -> tuple[str, ...]:
            return ("image",)

    with pytest.raises(ConfigError, match="the studio has no page for"):
        app.page_of(app.Served(served[0].path, NoPage(), served[0].run_cfg, tmp_path))  # type: ignore[arg-type]


def test_edit_page_edits_saves_and_applies_a_vector(studio) -> None:
    page, served, root, _ = studio
    editgan = served[3]
    page.get_by_role("tab", name="Edit").click()
    page.locator("#edit-sample").click()
    page.wait_for_selector("#edit-image img", timeout=60_000)
    _stroke(page, "edit", "8: circle")
    page.wait_for_timeout(1000)
    page.locator("#edit-apply").click()
    page.wait_for_function(
        "document.querySelector('#edit-status').innerText.includes('edit in')", timeout=120_000
    )
    assert "classes [8]" in page.locator("#edit-status").inner_text()
    page.locator("#edit-save").click()
    page.wait_for_selector("#edit-applied img", timeout=60_000)
    vector = torch.load(editgan.work_dir / "edit_vector_00.pt", weights_only=True)
    assert vector["classes"] == [8] and bool(vector["region"].any())
    assert float(vector["delta"].abs().sum()) > 0  # the optimisation moved w+
    page.wait_for_timeout(500)
    _shot(page, root, "edit")
