"""Edit (EditGAN): pick or upload an image (embedded into W+), repaint its segmentation, "apply
edit" optimises δw+ (`ganzoo.tasks.editing.edit`, the official 30 steps) and shows before,
after and their difference; the edit vector can be saved, and every saved vector has a
strength slider applied live (`apply_edits`), as `ganzoo.sample action=edit | apply_edit`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import torch
from PIL import Image

from ganzoo.cli import interactive
from ganzoo.data.files import center_crop_aspect, resize_image
from ganzoo.data.label_names import label_palette
from ganzoo.studio.common import Served, guarded, image, timed
from ganzoo.studio.paint import CANVAS_SCALE, _brush, _editor_value
from ganzoo.tasks import editing

SLOTS = 4  # saved vectors shown with a strength slider each
PROGRESS = gr.Progress()  # gradio hands each call its own tracker through this default


def build(served: Served) -> None:
    task: Any = served.task
    r = int(task.resolution)
    colours = label_palette(str(served.run_cfg.data.name), int(task.num_classes))
    hexes = ["#{:02x}{:02x}{:02x}".format(*c) for _, c in colours]
    names = [f"{i}: {name}" for i, (name, _) in enumerate(colours)]
    timings: list[float] = []
    ws_state, result_state, saved_state = gr.State(None), gr.State(None), gr.State([])

    with gr.Row():
        with gr.Column():
            seed = gr.Number(0, precision=0, label="seed of a generated image")
            sample = gr.Button("pick generated image", elem_id="edit-sample")
            steps = task.embed_settings.steps
            upload = gr.Image(
                label=f"or upload an RGB image (embedded: encoder + {steps} optimisation steps)",
                type="numpy",
            )
            original = gr.Image(label="image", type="numpy", format="png", interactive=False,
                                elem_classes=["pixels"], elem_id="edit-image")  # fmt: skip
        with gr.Column():
            klass = gr.Dropdown(names, value=names[0], label="class", elem_id="edit-class")
            mask = gr.ImageEditor(
                image_mode="RGB", type="numpy", sources=(), transforms=(), layers=False,
                format="png", canvas_size=(r * CANVAS_SCALE, r * CANVAS_SCALE), fixed_canvas=True,
                brush=_brush(hexes, 0, 8), eraser=gr.Eraser(default_size=8),
                label="segmentation (repaint a part)", elem_id="edit-mask",
            )  # fmt: skip
            apply = gr.Button("apply edit", variant="primary", elem_id="edit-apply")
    status = gr.Markdown(elem_id="edit-status")
    with gr.Row():
        before = gr.Image(label="before", format="png", interactive=False, elem_classes=["pixels"])
        after = gr.Image(label="after", format="png", interactive=False, elem_classes=["pixels"],
                         elem_id="edit-after")  # fmt: skip
        difference = gr.Image(label="|after - before| (scaled to its maximum)", format="png",
                              interactive=False, elem_classes=["pixels"])  # fmt: skip
    with gr.Row():
        save = gr.Button("save edit vector", elem_id="edit-save")
        files = gr.File(label="saved edit vectors", file_count="multiple")
    sliders = [gr.Slider(-2.0, 2.0, value=0.0, step=0.1, visible=False) for _ in range(SLOTS)]
    applied = gr.Image(label="image with the saved vectors at these strengths", format="png",
                       elem_id="edit-applied", interactive=False,
                       elem_classes=["pixels"])  # fmt: skip

    def show(ws: torch.Tensor) -> tuple[Any, np.ndarray, Any]:
        with torch.no_grad():
            picture, logits = editing.segment(task, ws)
        labels = interactive.resize_labels(logits.argmax(1)[0].cpu().numpy(), r * 4, r * 4)
        return ws, image(picture[0]), _editor_value(labels, colours)

    def pick(s: float) -> Any:
        g = torch.Generator().manual_seed(int(s or 0))
        z = torch.randn(1, task.stylegan.z_dim, generator=g).to(task.device)
        c = None
        if task.stylegan.c_dim > 0:
            c = torch.zeros(1, task.stylegan.c_dim, device=task.device)
            c[0, 0] = 1
        with torch.no_grad():
            ws = task.stylegan.mapping(z, c)
        return (*show(ws), "generated image picked")

    def embedded(picture: np.ndarray | None, progress: gr.Progress = PROGRESS) -> Any:
        if picture is None:
            return gr.skip()
        progress(0.1, desc=f"embedding: encoder + {task.embed_settings.steps} steps")
        img = center_crop_aspect(Image.fromarray(picture).convert("RGB"), r, r)
        x = torch.from_numpy(np.asarray(resize_image(img, r, r, "bilinear"), np.float32))
        with timed(timings):
            ws = editing.embed(task, (x.permute(2, 0, 1) / 127.5 - 1.0)[None].to(task.device))
        return (*show(ws), f"embedded in {timings[-1] / 1000:.1f} s")

    def run_edit(ws: Any, value: Any, progress: gr.Progress = PROGRESS) -> Any:
        if ws is None or value is None or value.get("composite") is None:
            raise ValueError("pick or upload an image first")
        progress(0.1, desc=f"editing: {task.edit_settings.steps} optimisation steps")
        painted = interactive.rgb_to_labels(value["composite"], colours)
        target = torch.from_numpy(interactive.resize_labels(painted, r, r))
        result = editing.edit(task, ws, target, source={"studio": str(served.path)})
        a, b = result.image_before[0], result.image_after[0]
        change = (b - a).abs().sum(0, keepdim=True)
        diff = change / change.max().clamp(min=1e-8) * 2 - 1  # scaled to its largest change
        inside = float(result.region.float().mean())
        note = (f"edit in {result.seconds:.1f} s; classes {result.vector.classes}; region "
                f"{100 * inside:.1f} % of the image")  # fmt: skip
        return result, image(a), image(b), image(diff.expand(3, -1, -1)), note

    def save_vector(result: Any, saved: list[str]) -> Any:
        if result is None:
            raise ValueError("apply an edit first")
        path = served.work_dir / f"edit_vector_{len(saved):02d}.pt"
        saved = [*saved, str(result.vector.save(path))]
        new = len(saved) - 1
        updates = [
            gr.Slider(visible=True, value=1.0, label=f"strength of {Path(saved[new]).name}")
            if i == new else gr.skip()
            for i in range(SLOTS)
        ]  # fmt: skip
        return (saved, saved, *updates)

    def apply_saved(ws: Any, saved: list[str], *strengths: float) -> Any:
        if ws is None or not saved:
            return gr.skip()
        vectors = [editing.EditVector.load(p) for p in saved[:SLOTS]]
        edited = editing.apply_edits(task, ws, vectors, list(strengths[: len(vectors)]))
        with torch.no_grad():
            return image(task.synthesize(edited)[0][0])

    picked = [ws_state, original, mask, status]
    sample.click(guarded(pick), seed, picked)
    upload.upload(guarded(embedded), upload, picked)
    klass.change(lambda n: gr.ImageEditor(brush=_brush(hexes, names.index(n), 8)), klass, mask)
    apply.click(
        guarded(run_edit), [ws_state, mask], [result_state, before, after, difference, status]
    )
    save.click(
        guarded(save_vector), [result_state, saved_state], [saved_state, files, *sliders]
    ).then(guarded(apply_saved), [ws_state, saved_state, *sliders], applied)
    for slider in sliders:
        slider.release(guarded(apply_saved), [ws_state, saved_state, *sliders], applied)
