"""Caption (AttnGAN): a caption -> the image of every stage and, for stages with word
attention, each word's attention map over the image (`ganzoo.sample action=caption`)."""

from __future__ import annotations

import gradio as gr
import torch.nn.functional as F

from ganzoo.cli import interactive
from ganzoo.studio.common import Served, guarded, image


def build(served: Served) -> None:
    task, run_cfg = served.task, served.run_cfg
    lookup = interactive.vocabulary(run_cfg)
    max_words = int(run_cfg.data.dataset.caption_length)
    with gr.Row():
        with gr.Column():
            text = gr.Textbox("a large red circle above the water by day", label="caption",
                              elem_id="caption-text")  # fmt: skip
            seed = gr.Number(0, precision=0, label="seed")
            go = gr.Button("draw", elem_id="caption-go")
            words_md = gr.Markdown()
        with gr.Column():
            stages = gr.Gallery(label="stages", format="png", columns=3, elem_id="caption-stages")
    attention = gr.Gallery(label="attention of each word (last stage)", format="png", columns=8)

    def run(caption: str, s: float):
        words, images, maps = interactive.caption(task, lookup, caption, int(s), max_words)
        shown = [(image(x[0]), f"stage {k + 1}: {x.shape[-1]}px") for k, x in enumerate(images)]
        panels = []
        if maps:
            last, attn = images[-1], maps[-1]
            heat = F.interpolate(attn, size=last.shape[-2:], mode="nearest")
            heat = heat / heat.flatten(2).amax(2).clamp(min=1e-12)[..., None, None]
            panels = [
                (image((last + 1) * heat[:, t : t + 1] - 1), word) for t, word in enumerate(words)
            ]
        return shown, panels, f"words used: {' '.join(words)}"

    go.click(guarded(run), [text, seed], [stages, attention, words_md])
    text.submit(guarded(run), [text, seed], [stages, attention, words_md])
