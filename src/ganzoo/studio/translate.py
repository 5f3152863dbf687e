"""Translate (StarGAN): an uploaded image, one column per ticked target (`ganzoo.sample
action=translate`): the source labels from D's domain classifier, targets as the official
solver builds them (attributes flipped, hair colours one-of, RaFD expressions)."""

from __future__ import annotations

import gradio as gr
import numpy as np
import torch
from PIL import Image

from ganzoo.cli import interactive
from ganzoo.data.files import center_crop_aspect, resize_image
from ganzoo.studio.common import Served, guarded, image


def build(served: Served) -> None:
    task = served.task
    h, w = interactive.model_size(served.run_cfg)
    probe = torch.zeros(3, h, w)
    targets = [name for name, _ in interactive.translate(task, probe, None)[1:]]
    with gr.Row():
        with gr.Column():
            picture = gr.Image(label="face or scene", type="numpy", elem_id="translate-input")
            ticked = gr.CheckboxGroup(targets, value=targets, label="targets")
            go = gr.Button("translate", elem_id="translate-go")
        gallery = gr.Gallery(label="input | one column per target", columns=len(targets) + 1,
                             format="png", elem_id="translate-output")  # fmt: skip

    def run(array: np.ndarray | None, chosen: list[str]):
        if array is None:
            raise ValueError("upload an image first")
        img = center_crop_aspect(Image.fromarray(array).convert("RGB"), w, h)
        x = torch.from_numpy(np.asarray(resize_image(img, w, h, "bilinear"), dtype=np.float32))
        columns = interactive.translate(task, x.permute(2, 0, 1) / 127.5 - 1.0, chosen or None)
        return [(image(c[0]), name) for name, c in columns]

    go.click(guarded(run), [picture, ticked], gallery)
    picture.upload(guarded(run), [picture, ticked], gallery)
