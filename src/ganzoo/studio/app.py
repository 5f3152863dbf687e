"""The studio's entry: load the checkpoints, pick each one's page, serve them locally."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig

from ganzoo.cli.build import load_run
from ganzoo.cli.entry import run
from ganzoo.core.errors import ConfigError
from ganzoo.studio.common import Served

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no telemetry, no version check


def page_of(served: Served) -> tuple[str, Callable[[Served], None]]:
    """(page name, builder) for the checkpoint's model; a one-line error for one it can't serve."""
    from ganzoo.studio import caption, edit, explore, paint, translate

    task = served.task
    if hasattr(task, "edit_settings"):
        return "Edit", edit.build
    if hasattr(task, "translation_columns"):
        return "Translate", translate.build
    if hasattr(task, "caption_images"):
        return "Caption", caption.build
    if hasattr(task, "draw_latents") and hasattr(task, "generate"):
        return "Explore", explore.build
    if "label_map" in task.required_fields():
        return "Paint", paint.build
    raise ConfigError(
        f"ckpt={served.path}: the studio has no page for {served.run_cfg.model._target_} "
        "(it serves SPADE, pix2pixHD, StyleGAN2, BigGAN, StarGAN, AttnGAN and EditGAN checkpoints)"
    )


def load(paths: list[Path], device: str, work_dir: Path | None) -> list[Served]:
    served = []
    for path in paths:
        task, run_cfg = load_run(path, device)
        where = (work_dir or path.parent.parent / "studio") / path.stem
        served.append(Served(path, task, run_cfg, where))
    return served


def build_app(served: list[Served]) -> Any:
    """The gr.Blocks app: a tab per checkpoint."""
    import gradio as gr

    pages = [(s, *page_of(s)) for s in served]  # errors before anything is served
    with gr.Blocks(title="ganzoo studio", analytics_enabled=False) as demo:
        gr.Markdown("## ganzoo studio")
        with gr.Tabs():
            for s, name, builder in pages:
                with gr.Tab(f"{name}: {s.title}"):
                    gr.Markdown(f"`{s.path}` — iteration {int(s.task.iteration)}")
                    builder(s)
    return demo


def theme() -> Any:
    """Gradio's default look with the system's fonts (the default fetches Google Fonts)."""
    import gradio as gr

    system = ["ui-sans-serif", "system-ui", "sans-serif"]
    return gr.themes.Default(font=system, font_mono=["ui-monospace", "monospace"])


# small model outputs shown large, pixels kept sharp
CSS = ".pixels img { image-rendering: pixelated; min-height: 256px; object-fit: contain; }"


def launch(demo: Any, host: str, port: int, block: bool = True) -> Any:
    return demo.launch(
        server_name=host, server_port=port, share=False, prevent_thread_lock=not block,
        theme=theme(), css=CSS, ssr_mode=False, footer_links=[], quiet=not block, show_error=True,
    )  # fmt: skip


def _paths(value: Any) -> list[Path]:
    items = list(value) if isinstance(value, ListConfig | list) else [value]
    return [Path(str(v)).expanduser() for v in items]


def main_fn(cfg: DictConfig) -> None:
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise ConfigError("ganzoo.studio needs Gradio: pip install -e '.[studio]'") from None
    if cfg.threads is not None:
        torch.set_num_threads(int(cfg.threads))
    work_dir = None if cfg.work_dir is None else Path(str(cfg.work_dir))
    served = load(_paths(cfg.ckpt), str(cfg.device), work_dir)
    demo = build_app(served)
    print(
        f"ganzoo studio: http://{cfg.host}:{cfg.port}  ({len(served)} checkpoint(s); Ctrl-C stops)"
    )
    launch(demo, str(cfg.host), int(cfg.port))


def collect_ckpts(argv: list[str]) -> list[str]:
    """`ckpt=a ckpt=b` (repeated, as the README writes it) -> one Hydra list override."""
    paths = [a.split("=", 1)[1] for a in argv if a.startswith("ckpt=")]
    if len(paths) < 2:
        return argv
    others = [a for a in argv if not a.startswith("ckpt=")]
    quoted = ",".join("'" + p.replace("'", "\\'") + "'" for p in paths)
    return [*others, f"ckpt=[{quoted}]"]


def main() -> None:
    sys.argv[1:] = collect_ckpts(sys.argv[1:])
    run("studio", main_fn, quiet=True)


if __name__ == "__main__":
    main()
