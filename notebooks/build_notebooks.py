"""Writes notebooks/quickstart.ipynb and notebooks/model_zoo.ipynb (outputs stripped).

The notebooks are the source; this script only keeps their cells in a reviewable place:
    .venv/bin/python notebooks/build_notebooks.py
Both are executed by tests/test_notebooks.py with GANZOO_NOTEBOOK_OVERRIDES=debug=smoke.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

SETUP = '''import csv, json, os, subprocess, sys, tempfile
from pathlib import Path
from IPython.display import Image, display

# Where the runs go, and extra overrides for every command (the test suite sets debug=smoke).
WORK = Path(os.environ.get("GANZOO_NOTEBOOK_DIR") or tempfile.mkdtemp(prefix="ganzoo-nb-"))
EXTRA = os.environ.get("GANZOO_NOTEBOOK_OVERRIDES", "").split()
EVAL_EXTRA = os.environ.get("GANZOO_NOTEBOOK_EVAL_OVERRIDES", "").split()

def ganzoo(entry, *args):
    """python -m ganzoo.<entry> args... in WORK; returns stdout, raises with the error line."""
    cmd = [sys.executable, "-m", f"ganzoo.{entry}", *args]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=WORK)
    if result.returncode:
        raise RuntimeError(result.stderr.strip().splitlines()[-1])
    return result.stdout

print("runs go to", WORK)'''


def quickstart() -> nbformat.NotebookNode:
    cells = [
        new_markdown_cell(
            "# ganzoo quickstart: train, sample, evaluate — on the CPU, with no download\n\n"
            "SPADE on the embedded synthetic scenes: train a run, look at its sample grids and "
            "losses, render a new label map with the trained generator, and score it with the "
            "synthetic-domain evaluator. Every step is the command line you would type; the "
            "notebook only calls it. The full default run takes about 7 minutes on 2 cores."
        ),
        new_code_cell(SETUP),
        new_markdown_cell(
            "## Train\n`python -m ganzoo.train` = `model=spade data=synthetic`. The run dir holds "
            "checkpoints, sample grids, `metrics.csv` and the resolved `config.yaml`; re-running "
            "the same command resumes it."
        ),
        new_code_cell(
            'ganzoo("train", "logger=csv", f"paths.root_dir={WORK}", *EXTRA)\n'
            'run = WORK / "outputs" / "spade-synthetic"\n'
            "print(sorted(p.name for p in run.iterdir()))"
        ),
        new_code_cell(
            "# the newest sample grid: label map | EMA generator | real, same inputs every time\n"
            'grids = sorted((run / "samples").glob("iter_*.png"))\n'
            "display(Image(filename=str(grids[-1])))"
        ),
        new_code_cell(
            '# the losses of the last logged iterations\nrows = list(csv.DictReader(open(run / "metrics.csv")))\n'
            'for row in rows[-3:]:\n    print({k: round(float(v), 4) for k, v in row.items() if k.startswith("loss/") and v})'
        ),
        new_markdown_cell(
            "## Sample without the dataset\nAny label-map PNG (one channel of label ids) goes "
            "through the EMA generator. Here one is drawn from the synthetic scenes' validation "
            "split and saved as a file first, as you would draw your own."
        ),
        new_code_cell(
            "from PIL import Image as PILImage\n"
            "from ganzoo.data.synthetic import SyntheticScenes\n"
            'size = int(__import__("omegaconf").OmegaConf.load(run / "config.yaml").data.resolution)\n'
            'scene = SyntheticScenes(length=1, height=size, width=size, split="val")[0]\n'
            'PILImage.fromarray(scene["label_map"].numpy().astype("uint8")).save(WORK / "labels.png")\n'
            'out = json.loads(ganzoo("sample", f"ckpt={run}/checkpoints/last.ckpt", f"label_map={WORK}/labels.png", "num_samples=2"))\n'
            'display(Image(filename=[f for f in out["files"] if f.endswith("grid.png")][0]))'
        ),
        new_markdown_cell(
            "## Evaluate\n`python -m ganzoo.evaluate` scores a checkpoint. On the synthetic scenes "
            "ganzoo trains (once, cached) a small segmenter and classifier, so mIoU, class "
            "accuracy and a domain FID need no download (its first use trains the evaluator, "
            "a few minutes on a CPU); FID/KID/IS against Inception need "
            "`weights.inception=PATH` (see the README)."
        ),
        new_code_cell(
            'result = json.loads(ganzoo("evaluate", f"ckpt={run}/checkpoints/last.ckpt", "metrics=[miou,domain]", "metrics.num_samples=64", *EVAL_EXTRA))\n'
            "print(json.dumps(result, indent=1)[:1500])"
        ),
    ]
    return new_notebook(
        cells=cells,
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
    )


def model_zoo() -> nbformat.NotebookNode:
    cells = [
        new_markdown_cell(
            "# The model zoo: paper networks and their parameter counts, then a short run of each\n\n"
            "Every model is built at paper scale on the `meta` device (no memory, no weights) and "
            "its parameter count compared with the official one in `reference/params.json`; then "
            "each trains briefly on the synthetic scenes and shows its sample grid."
        ),
        new_code_cell(SETUP),
        new_code_cell(
            "from ganzoo.cli.preflight import CONFIG_DIR\n"
            'MODELS = sorted(p.stem for p in (CONFIG_DIR / "model").glob("*.yaml"))\n'
            'PAPER_DATA = {"spade": "ade20k", "pix2pixhd": "cityscapes", "biggan": "imagenet",\n'
            '              "stylegan2": "ffhq", "stargan": "celeba", "attngan": "cub", "damsm": "cub"}\n'
            "print(MODELS)"
        ),
        new_code_cell(
            "for model in MODELS:\n"
            '    data = PAPER_DATA.get(model, "synthetic")\n'
            '    info = json.loads(ganzoo("info", f"model={model}", f"data={data}"))\n'
            '    counts = ", ".join(f"{k} {v:,}" for k, v in info["parameters"].items())\n'
            '    print(f"{model:10s} data={data:11s} {counts}")'
        ),
        new_markdown_cell(
            "## A short run of each on the synthetic scenes (one Hydra multirun)\n"
            "200 iterations each by default (a few minutes per model on a CPU); the grids show "
            "where each model stands after them. `python -m ganzoo.train model=<name>` trains "
            "the full synthetic preset."
        ),
        new_code_cell(
            '# AttnGAN trains in two stages (a DAMSM run first, whose Inception-v3 encoder is slow\n'
            '# to train from scratch on a CPU): the default tour leaves both out; see the README.\n'
            '# EditGAN needs a trained StyleGAN2 (model.stylegan2_ckpt): left out too.\n'
            'SKIP = ("attngan", "damsm", "editgan")\n'
            'TRAIN = [m for m in MODELS if m != "editgan"] if EXTRA else [m for m in MODELS if m not in SKIP]\n'
            'ganzoo("train", "-m", f"model={\',\'.join(TRAIN)}", "logger=csv", f"paths.root_dir={WORK}", *(EXTRA or ["steps=200"]))\n'
            'for cfg in sorted((WORK / "outputs" / "multirun").glob("*/*/config.yaml")):\n'
            '    grids = sorted((cfg.parent / "samples").glob("iter_*.png"))\n'
            "    print(cfg.parent.name)\n"
            "    display(Image(filename=str(grids[-1])))"
        ),
    ]
    return new_notebook(
        cells=cells,
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
    )


if __name__ == "__main__":
    nbformat.write(quickstart(), HERE / "quickstart.ipynb")
    nbformat.write(model_zoo(), HERE / "model_zoo.ipynb")
