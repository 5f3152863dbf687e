"""Explore (StyleGAN2, BigGAN): seed, truncation (and cutoff), class, style mixing and
interpolation — the images `ganzoo.sample action=generate|mix|interpolate` writes."""

from __future__ import annotations

import gradio as gr

from ganzoo.cli import interactive
from ganzoo.core.image import grid
from ganzoo.data.synthetic import SyntheticScenes
from ganzoo.studio.common import Served, guarded, image, ints


def class_names(served: Served) -> list[str] | None:
    """'id: name' per class of a class-conditional model (names where the dataset has them)."""
    task = served.task
    count = int(getattr(task, "num_classes", 0) or getattr(task, "c_dim", 0) or 0)
    if count == 0:
        return None
    known = SyntheticScenes.scene_names if served.run_cfg.data.name == "synthetic" else ()
    return [f"{i}: {known[i]}" if i < len(known) else f"{i}: class {i}" for i in range(count)]


def build(served: Served) -> None:
    task = served.task
    classes = class_names(served)
    is_stylegan = hasattr(task, "style_mix")
    run_cutoff = getattr(task, "truncation_cutoff", None)  # the run's own setting
    with gr.Row():
        with gr.Column(scale=1):
            seed = gr.Number(0, precision=0, label="seed", elem_id="explore-seed")
            psi = gr.Slider(
                0.0, 2.0, value=1.0, step=0.05, label="truncation (StyleGAN2 psi; BigGAN threshold)"
            )
            cutoff = gr.Textbox(
                "", label="truncation cutoff: first N ws only (empty = all)", visible=is_stylegan
            )
            klass = gr.Dropdown(
                classes or [], value=classes[0] if classes else None, label="class",
                visible=bool(classes),
            )  # fmt: skip
            go = gr.Button("generate", elem_id="explore-generate")
        with gr.Column(scale=1):
            out = gr.Image(
                label="image",
                type="numpy",
                format="png",
                interactive=False,
                elem_classes=["pixels"],
                elem_id="explore-output",
            )
    with gr.Accordion("style mixing", open=False, visible=is_stylegan):
        with gr.Row():
            rows = gr.Textbox("85,100,75", label="row seeds")
            cols = gr.Textbox("55,821,1789", label="column seeds")
            layers = gr.Textbox("0-6", label="layers taken from the column")
            mix_go = gr.Button("mix")
        mix_out = gr.Image(
            label="mixing grid (rows x columns)",
            type="numpy",
            format="png",
            interactive=False,
            elem_classes=["pixels"],
        )
    with gr.Accordion("interpolation", open=False):
        with gr.Row():
            seed_b = gr.Number(1, precision=0, label="to seed")
            steps = gr.Slider(2, 16, value=8, step=1, label="frames")
            lerp_go = gr.Button("interpolate")
        lerp_out = gr.Image(
            label="frames", type="numpy", format="png", interactive=False, elem_classes=["pixels"]
        )

    def class_id(name: str | None) -> int | None:
        return None if not classes or name is None else int(str(name).split(":")[0])

    def one(s: float, t: float, c: str, name: str | None):
        cut = (int(c) if str(c).strip() else run_cutoff) if is_stylegan else None
        return image(interactive.generate(task, [int(s)], float(t), class_id(name), cut)[0])

    def mixing(r: str, c: str, lay: str, t: float, name: str | None):
        rs, cs = ints(r, "row seeds"), ints(c, "column seeds")
        mixed = interactive.style_mix(task, rs, cs, ints(lay, "layers"), float(t), class_id(name))
        cells = mixed.reshape(len(rs), len(cs), *mixed.shape[1:])
        return grid([cells[:, j] for j in range(len(cs))])

    def frames(a: float, b: float, n: float, t: float, name: str | None):
        images = interactive.interpolate(task, int(a), int(b), int(n), float(t), class_id(name))
        return grid([images[j : j + 1] for j in range(len(images))])

    for trigger in (go.click, seed.submit, psi.release, klass.change):
        trigger(guarded(one), [seed, psi, cutoff, klass], out)
    mix_go.click(guarded(mixing), [rows, cols, layers, psi, klass], mix_out)
    lerp_go.click(guarded(frames), [seed, seed_b, steps, psi, klass], lerp_out)
