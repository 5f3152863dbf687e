"""Paint (SPADE, pix2pixHD): GauGAN's canvas. Strokes of a class colour become a label map
(each pixel the class of the nearest palette colour, resized to the model with nearest), and
the EMA generator renders it on every stroke, as `ganzoo.sample action=render` would."""

from __future__ import annotations

import os
from typing import Any

import gradio as gr
import numpy as np
import torch
from PIL import Image

from ganzoo.cli import interactive
from ganzoo.core.image import save_png
from ganzoo.studio.common import Served, guarded, image, timed

CANVAS_SCALE = 4  # canvas pixels per model pixel


def _editor_value(labels: np.ndarray, colours: interactive.Palette) -> Any:
    """The ImageEditor value (gradio's EditorValue dict) of a canvas filled with `labels`."""
    rgb = interactive.labels_to_rgb(labels, colours)
    return {"background": rgb, "layers": [], "composite": rgb}


def _brush(hexes: list[str], index: int, size: int) -> gr.Brush:
    colors: list[str | tuple[str, float]] = list(hexes)
    return gr.Brush(
        colors=colors, default_color=hexes[index], color_mode="fixed", default_size=size
    )


def read_label_png(path: str, height: int, width: int, num_labels: int) -> np.ndarray:
    """A PNG of label ids, resized (nearest) to height x width; one-line errors."""
    img = Image.open(path)
    if img.mode not in ("L", "I", "I;16", "P"):
        raise ValueError(f"{path}: a label map is a one-channel PNG of ids, got mode {img.mode}")
    labels = np.array(img).astype(np.int64)
    if labels.max() >= num_labels:
        raise ValueError(
            f"label id {labels.max()} is out of range: the model has 0..{num_labels - 1}"
        )
    return interactive.resize_labels(labels, height, width)


def parse_centres(text: str | None) -> dict[int, int]:
    """'8:2, 3:0' -> {8: 2, 3: 0} (pix2pixHD: the feature centre each class takes)."""
    choice = {}
    for part in (text or "").replace(" ", "").split(","):
        if part:
            k, _, v = part.partition(":")
            try:
                choice[int(k)] = int(v)
            except ValueError:
                raise ValueError(
                    f"centres: expected class:centre pairs like 8:2, 3:0; got {part!r}"
                ) from None
    return choice


def _clusters(served: Served) -> dict[int, torch.Tensor] | None:
    path = served.path.parent / "feature_clusters.pt"  # written by ganzoo.sample action=cluster
    return torch.load(path, weights_only=True)["centres"] if path.is_file() else None


def build(served: Served) -> None:
    task, run_cfg = served.task, served.run_cfg
    colours = interactive.run_palette(run_cfg)
    h, w = interactive.model_size(run_cfg)
    hexes = ["#{:02x}{:02x}{:02x}".format(*c) for _, c in colours]
    names = [f"{i}: {name}" for i, (name, _) in enumerate(colours)]
    start = np.zeros((h * CANVAS_SCALE, w * CANVAS_SCALE), dtype=np.int64)
    use_vae = bool(getattr(task, "use_vae", False))
    has_features = getattr(task, "render_latents", None) is not None and (
        getattr(task, "encoder", None) is not None
    )
    clusters = _clusters(served) if has_features else None
    timings: list[float] = []

    def draw(labels: np.ndarray, seed: int, style_z: Any, choice: dict[int, int]) -> np.ndarray:
        with timed(timings):
            images = interactive.render(
                task, torch.from_numpy(labels), seed=seed, clusters=clusters, centres=choice,
                style=style_z,
            )  # fmt: skip
        return image(images[0])

    first = (
        None if has_features and clusters is None else draw(np.zeros((h, w), np.int64), 0, None, {})
    )
    style_state = gr.State(None)
    with gr.Row():
        with gr.Column():
            klass = gr.Dropdown(names, value=names[0], label="class", elem_id="paint-class")
            size = gr.Slider(1, 64, value=12, step=1, label="brush size")
            editor = gr.ImageEditor(
                value=_editor_value(start, colours), image_mode="RGB", type="numpy",
                sources=(), transforms=(), layers=False, format="png",
                canvas_size=(w * CANVAS_SCALE, h * CANVAS_SCALE), fixed_canvas=True,
                brush=_brush(hexes, 0, 12), eraser=gr.Eraser(default_size=12),
                label="label map (paint; the eraser restores the filled class)",
                elem_id="paint-canvas",
            )  # fmt: skip
            with gr.Row():
                fill = gr.Button("fill with class", elem_id="paint-fill")
                upload = gr.File(
                    label="upload a label map PNG", file_types=[".png"], type="filepath"
                )
            swatches = "".join(
                '<span style="display:inline-block;margin:2px 6px">'
                '<span style="display:inline-block;width:12px;height:12px;'
                f'background:{c};border:1px solid #888"></span> {n}</span>'
                for c, n in zip(hexes, names, strict=True)
            )
            gr.HTML(f'<div style="font-size:12px">{swatches}</div>')
        with gr.Column():
            out = gr.Image(
                first, label="rendered", type="numpy", format="png", interactive=False,
                elem_classes=["pixels"], elem_id="paint-output",
            )  # fmt: skip
            status = gr.Markdown(elem_id="paint-status")
            with gr.Row():
                seed = gr.Number(0, precision=0, label="seed (latents / centre draws)")
                new_style = gr.Button("new style", elem_id="paint-new-style")
            style = gr.Image(label="style image (SPADE use_vae)", type="numpy", visible=use_vae)
            centres = gr.Textbox(
                label="feature centre per class, e.g. 8:2, 3:0 (pix2pixHD; needs "
                "`ganzoo.sample action=cluster` first)",
                visible=has_features,
            )
            with gr.Row():
                label_file = gr.File(label="label map (ids, PNG)", elem_id="paint-label-file")
                image_file = gr.File(label="image (PNG)", elem_id="paint-image-file")

    def render(value: dict[str, Any] | None, seed_value: float, style_z: Any, centre_text: str):
        if value is None or value.get("composite") is None:
            return gr.skip()
        painted = interactive.rgb_to_labels(value["composite"], colours)
        labels = interactive.resize_labels(painted, h, w)
        pixels = draw(labels, int(seed_value or 0), style_z, parse_centres(centre_text))
        image_path = save_png(pixels, served.work_dir / "image.png")
        label_path = served.work_dir / "label_map.png"  # after the image, renamed into place
        ids = labels.astype(np.uint8) if len(colours) <= 256 else labels.astype(np.uint16)
        tmp = label_path.with_name(".label_map.png.tmp")
        Image.fromarray(ids).save(tmp, format="PNG")
        os.replace(tmp, label_path)
        note = f"rendered {w}x{h} in {timings[-1]:.0f} ms"
        return pixels, note, str(label_path), str(image_path)

    inputs = [editor, seed, style_state, centres]
    outputs = [out, status, label_file, image_file]
    # strokes, undo and the eraser are "input" events; fill and upload re-render through .then
    editor.input(
        guarded(render), inputs, outputs, show_progress="hidden", trigger_mode="always_last"
    )

    def pick(name: str, brush_size: float) -> Any:
        return gr.ImageEditor(brush=_brush(hexes, names.index(name), int(brush_size)))

    klass.change(pick, [klass, size], editor)
    size.change(pick, [klass, size], editor)

    def fill_all(name: str) -> Any:
        return _editor_value(np.full(start.shape, names.index(name)), colours)

    def uploaded(path: str) -> Any:
        return _editor_value(read_label_png(path, *start.shape, len(colours)), colours)

    fill.click(fill_all, klass, editor).then(guarded(render), inputs, outputs)
    upload.upload(guarded(uploaded), upload, editor).then(guarded(render), inputs, outputs)

    def set_style(picture: np.ndarray | None) -> Any:
        if picture is None:
            return None
        x = torch.from_numpy(np.asarray(Image.fromarray(picture).convert("RGB").resize((w, h))))
        return interactive.encode_style(task, x.permute(2, 0, 1).float() / 127.5 - 1.0)

    style.upload(guarded(set_style), style, style_state).then(guarded(render), inputs, outputs)
    new_style.click(lambda s: (int(s or 0) + 1, None), seed, [seed, style_state]).then(
        guarded(render), inputs, outputs
    )
    seed.submit(guarded(render), inputs, outputs)
    centres.submit(guarded(render), inputs, outputs)
