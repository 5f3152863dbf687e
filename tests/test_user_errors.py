"""What a new user meets (issue 18, items 8-13): one-line errors instead of tracebacks, smoke
runs of every README pair on tiny fabricated datasets, progress and notes said once, and files
that are not overwritten. Configs are composed in-process; a few entries run as the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from ganzoo.cli.preflight import CONFIG_DIR, check_pair, check_run_config, check_shapes
from ganzoo.cli.resolvers import evaluation_dir
from ganzoo.compare import compare
from ganzoo.core import console
from ganzoo.core.errors import ConfigError, FieldMismatchError, WeightsError
from ganzoo.core.image import grid, with_headers
from ganzoo.core.weights import load_state_dict, resolve
from ganzoo.data.files import read_rgb
from ganzoo.evaluate import main_fn as evaluate_main
from ganzoo.export import info_path
from ganzoo.export import main_fn as export_main
from ganzoo.sample import ignored_centres, unused_path
from ganzoo.sample import main_fn as sample_main
from ganzoo.train import main_fn as train_main
from tests.conftest import compose_train, run_cli
from tests.test_datasets import gray, make_cityscapes, make_cub, rgb

pytestmark = pytest.mark.usefixtures("one_thread")

QUIET = ["logger=csv", "trainer.enable_progress_bar=false"]


def cfg_of(tmp_path: Path, *overrides: str):
    return compose_train(tmp_path / "run", list(overrides))


# ----- item 8: model/data pairs that do not fit ------------------------------------------------
@pytest.mark.parametrize(
    ("model", "data", "message"),
    [
        ("spade", "celeba", "model=spade needs label_map; data=celeba provides image, attributes"),
        ("stargan", "ffhq", "model=stargan needs attributes; data=ffhq provides image"),
        ("biggan", "ade20k", "model=biggan needs class_id; data=ade20k provides image, label_map"),
        ("pix2pixhd", "celeba", "model=pix2pixhd needs label_map; data=celeba provides image, "
         "attributes"),
        ("attngan", "imagenet", "model=attngan needs caption_tokens, caption_lengths; "
         "data=imagenet provides image, class_id"),
        ("spade", "paired_folder", "model=spade needs data.label_nc (semantic classes of "
         "label_map); data=paired_folder sets label_nc=null"),
    ],
)  # fmt: skip
def test_a_pair_that_does_not_fit_names_both_before_anything_is_built(
    tmp_path: Path, model: str, data: str, message: str
) -> None:
    cfg = cfg_of(tmp_path, f"model={model}", f"data={data}", "data.root=/nowhere")
    with pytest.raises(FieldMismatchError) as err:
        check_pair(cfg, model)  # reads classes and counts only: nothing resolved or built
    assert str(err.value) == message


def test_every_model_and_data_config_is_checked(tmp_path: Path) -> None:
    """Every model x data pair either fits by fields or is refused in the documented line
    (yaml files read directly: composing 100 configs would take a minute)."""
    base = OmegaConf.load(CONFIG_DIR / "data" / "_base.yaml")
    models = sorted(p.stem for p in (CONFIG_DIR / "model").glob("*.yaml"))
    datas = sorted(p.stem for p in (CONFIG_DIR / "data").glob("[!_]*.yaml"))
    refused = 0
    for d in datas:
        data = OmegaConf.merge(base, OmegaConf.load(CONFIG_DIR / "data" / f"{d}.yaml"))
        for m in models:
            model = OmegaConf.load(CONFIG_DIR / "model" / f"{m}.yaml")
            cfg = OmegaConf.create({"model": {"_target_": model._target_}, "data": data})
            try:
                check_pair(cfg, m)
            except FieldMismatchError as err:
                refused += 1
                assert str(err).startswith(f"model={m} needs ") and f"; data={d} " in str(err)
    assert refused > len(models) * len(datas) // 2


def test_training_refuses_a_pair_before_the_run_dir_is_used(tmp_path: Path) -> None:
    cfg = cfg_of(tmp_path, "model=stargan", "data=ffhq", "debug=smoke", "data.root=/nowhere")
    with pytest.raises(FieldMismatchError, match="^model=stargan needs attributes; data=ffhq"):
        train_main(cfg)  # `python -m ganzoo.train`: `error: <this line>`, exit status 2
    assert not (tmp_path / "run" / "config.yaml").exists()


# ----- item 9: bad values ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["steps=2.5"], "steps=2.5 must be a whole number >= 1"),
        (["data.batch_size=1.5"], "data.batch_size=1.5 must be a whole number >= 1"),
        (["seed=xyz"], "seed=xyz must be a whole number"),
        (["data.resolution=0"], "data.resolution=0 must be a whole number >= 1"),
        (
            ["model=attngan", "data.vocab_size=null"],
            "model=attngan needs data.vocab_size (caption vocabulary size); "
            "data=synthetic sets vocab_size=null",
        ),
        (
            ["model=stylegan2", "data=image_folder"],
            "data=image_folder needs data.root=PATH, the dataset's folder (its layout: the "
            "docstring of ganzoo.data.image_folder)",
        ),
    ],
)
def test_bad_values_are_one_line_errors(tmp_path: Path, overrides, message: str) -> None:
    cfg = cfg_of(tmp_path, "debug=smoke", *overrides)
    model = next((o.split("=")[1] for o in overrides if o.startswith("model=")), "spade")
    with pytest.raises(ConfigError) as err:
        check_run_config(cfg, model)
    assert str(err.value) == message


def test_a_resolution_the_model_cannot_make_names_the_sizes_that_fit(tmp_path: Path) -> None:
    cfg = cfg_of(tmp_path, "debug=smoke", "data.resolution=33")
    with pytest.raises(ConfigError) as err:
        check_shapes(cfg, "spade")  # the networks built and run on the meta device
    message = str(err.value)
    assert message.startswith("model=spade cannot make 33x33 images (data.resolution=33")
    assert message.endswith("(data.resolution=32 or 64 fits)") and "\n" not in message


def test_a_text_file_as_weights_is_one_line(tmp_path: Path, capsys) -> None:
    text = tmp_path / "vgg19.pth"
    text.write_text("not weights\n")
    console.forget_notes()
    resolved = resolve("vgg19", text, tmp_path)
    assert "is not the published vgg19" in capsys.readouterr().err  # said once
    with pytest.raises(WeightsError) as err:  # was: KeyError from the weights-only unpickler
        load_state_dict(resolved)
    assert str(err.value).startswith(f"weights.vgg19: file {text} ")
    assert "\n" not in str(err.value)
    text.write_text("hello this is text\n")
    with pytest.raises(WeightsError, match=r"is not a PyTorch weights file \(KeyError"):
        load_state_dict(resolve("vgg19", text, tmp_path))


# ----- item 10: debug=smoke for every README pair --------------------------------------------
README_PAIRS = [
    ("spade", "ade20k"), ("spade", "cityscapes"), ("spade", "cocostuff"),
    ("pix2pixhd", "cityscapes"), ("stargan", "celeba"), ("stargan", "rafd"),
    ("stargan", "celeba_rafd"), ("biggan", "imagenet"), ("stylegan2", "ffhq"),
    ("damsm", "cub"), ("damsm", "coco_captions"), ("attngan", "cub"),
    ("attngan", "coco_captions"),
]  # fmt: skip


@pytest.mark.parametrize(("model", "data"), README_PAIRS)
def test_smoke_networks_fit_every_readme_pair(tmp_path: Path, model: str, data: str) -> None:
    cfg = cfg_of(tmp_path, f"model={model}", f"data={data}", "debug=smoke", "data.root=/x")
    check_pair(cfg, model)
    check_shapes(cfg, model)  # was: SPADE's 'more' upsampling at 32 wide (Cityscapes)


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Checkpoints of smoke runs on fabricated Cityscapes (SPADE) and CUB (DAMSM) trees and on
    the synthetic scenes, trained by `ganzoo.train`'s main function (with its pre-flight)."""
    root = tmp_path_factory.mktemp("user")
    weights = root / "weights"  # empty: DAMSM's smoke must not ask for Inception-v3
    weights.mkdir()
    runs = {
        "spade": ["model=spade", "data=cityscapes", f"data.root={make_cityscapes(root / 'cs')}"],
        "damsm": ["model=damsm", "data=cub", f"data.root={make_cub(root / 'birds')}",
                  "data.vocab_size=51"],
        "synthetic": ["model=spade", "data=synthetic"],
    }  # fmt: skip
    ckpts = {}
    for name, overrides in runs.items():
        run_dir = root / name
        common = ["debug=smoke", "steps=2", f"paths.weights_dir={weights}", *QUIET]
        train_main(compose_train(run_dir, [*overrides, *common, f"paths.cache_dir={root}/c"]))
        ckpts[name] = run_dir / "checkpoints" / "last.ckpt"
        assert ckpts[name].is_file()
    return ckpts


def _sample_cfg(ckpt: Path, **values):
    base = OmegaConf.load(CONFIG_DIR / "sample.yaml")
    return OmegaConf.merge(base, {"ckpt": str(ckpt), **values})


def test_render_resizes_a_label_map_of_another_size_and_says_so(
    smoke_runs: dict[str, Path], tmp_path: Path, capsys
) -> None:
    labels = np.full((24, 40), 7, np.uint8)
    labels[4:12, 8:30] = 26
    gray(tmp_path / "map.png", labels)
    console.forget_notes()
    values = dict(label_map=str(tmp_path / "map.png"), output=str(tmp_path / "out"))
    result = sample_main(_sample_cfg(smoke_runs["spade"], num_samples=1, device="cpu", **values))
    assert "is 40x24, the model makes 64x32 images: resized with nearest" in result["note"]
    assert "resized with nearest neighbour" in capsys.readouterr().err
    assert Image.open(result["files"][0]).size == (64, 32)


def test_exporting_a_damsm_run_is_one_line(smoke_runs: dict[str, Path]) -> None:
    cfg = OmegaConf.merge(
        OmegaConf.load(CONFIG_DIR / "export.yaml"), {"ckpt": str(smoke_runs["damsm"])}
    )
    with pytest.raises(ConfigError, match="makes no images: nothing to export; its encoders"):
        export_main(cfg)


def test_torchscript_and_onnx_exports_keep_their_own_json(smoke_runs: dict[str, Path]) -> None:
    assert info_path(Path("g/generator.pt")) == Path("g/generator.pt.json")
    assert info_path(Path("g/generator.onnx")) == Path("g/generator.onnx.json")
    cfg = OmegaConf.merge(
        OmegaConf.load(CONFIG_DIR / "export.yaml"), {"ckpt": str(smoke_runs["spade"])}
    )
    info = export_main(cfg)
    assert json.loads(info_path(Path(info["file"])).read_text())["format"] == "torchscript"


# ----- item 12: say so, once ------------------------------------------------------------------
def test_conversions_and_label_size_mismatch_are_said_once(tmp_path: Path, capsys) -> None:
    console.forget_notes()
    Image.new("L", (8, 8), 128).save(tmp_path / "a.png")
    Image.new("RGBA", (8, 8)).save(tmp_path / "b.png")
    for _ in range(2):
        assert read_rgb(tmp_path / "a.png").mode == read_rgb(tmp_path / "b.png").mode == "RGB"
    err = capsys.readouterr().err
    assert err.count("images in mode L are converted to RGB (grayscale") == 1
    assert err.count("images in mode RGBA are converted to RGB (alpha dropped") == 1


def test_cityscapes_8bit_instances_and_label_size_are_said(tmp_path: Path, capsys) -> None:
    from ganzoo.data.cityscapes import Cityscapes  # noqa: PLC0415

    root = make_cityscapes(tmp_path / "cs")
    for path in root.glob("gtFine/train/*/*_instanceIds.png"):
        gray(path, np.full((8, 16), 7, np.uint8))  # 8-bit, as some conversions write them
    label = next(root.glob("gtFine/train/aachen/*_labelIds.png"))
    gray(label, np.full((4, 8), 7, np.uint8))  # half the size of its photo
    console.forget_notes()
    ds = Cityscapes(root, "train", 8, 16, "bicubic", False, "fail", None, 0)  # type: ignore[arg-type]
    for i in range(len(ds)):
        ds[i]
    err = capsys.readouterr().err
    assert err.count("Cityscapes instanceIds are 8-bit") == 1
    assert err.count("is 8x4, its image") == 1


def test_few_samples_for_inception_metrics_are_said(capsys) -> None:
    from ganzoo.callbacks.metrics import note_small_counts  # noqa: PLC0415

    console.forget_notes()
    note_small_counts(["fid", "kid", "domain"], 3, 3)
    note_small_counts(["domain"], 3, 3)
    err = capsys.readouterr().err
    assert err.count("metrics=fid,kid from 3 generated and 3 real images: below 2048") == 1


# ----- items 11 and 13: progress, where results go, what is not overwritten --------------
def test_evaluate_shows_progress_prints_values_and_writes_beside_the_run(
    smoke_runs: dict[str, Path], tmp_path: Path, capfd
) -> None:
    ckpt = smoke_runs["synthetic"]
    recipe = {"train_samples": 16, "steps": 3, "batch_size": 8}
    overrides = [
        f"ckpt={ckpt}",
        "metrics=domain",
        "metrics.num_samples=4",
        "metrics.batch_size=2",
        f"paths.cache_dir={tmp_path / 'cache'}",
        *(f"metrics.scene_evaluator.{k}={v}" for k, v in recipe.items()),
        "device=cpu",
    ]
    run_dir = ckpt.parent.parent
    cfg = compose_train(run_dir, overrides, config_name="evaluate")
    assert Path(str(cfg.hydra.run.dir)) == run_dir  # Hydra's run dir: beside the run
    capfd.readouterr()
    evaluate_main(cfg)
    out, err = capfd.readouterr()
    result = json.loads(out)
    assert json.loads((run_dir / "evaluation.json").read_text()) == result
    for bar in ("training the scene evaluator (cached after):", "scene features of real images:",
                "generating images for the metrics:"):  # fmt: skip
        assert f"ganzoo: {bar}" in err  # with count / total, rate and time left
    assert "| 0/4 [" in err and "| 0/3 [" in err
    assert f"ganzoo: domain_fid {result['metrics']['domain_fid']:.4g}" in err
    assert evaluation_dir(None, "x") == "x"


def test_a_smoke_run_prints_losses_and_no_library_noise(tmp_path: Path) -> None:
    args = ["debug=smoke", "steps=2", "logger=csv", "callbacks.checkpoint=null"]
    proc = run_cli("ganzoo.train", *args, f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout + proc.stderr
    for noise in ("wandb:", "Tip:", "GPU available", "deprecated", "Trainer.fit"):
        assert noise not in text
    assert "G=" in proc.stdout and "D=" in proc.stdout  # the progress bar's losses
    assert "ganzoo: iteration 2: G " in proc.stderr
    assert json.loads((tmp_path / "samples" / "columns.json").read_text())["columns"]


def test_outputs_are_not_overwritten_and_panels_are_labelled(tmp_path: Path) -> None:
    first = tmp_path / "translate_grid.png"
    assert unused_path(first) == first
    first.write_bytes(b"")
    assert unused_path(first) == tmp_path / "translate_grid_2.png"
    cells = grid([torch.zeros(1, 3, 16, 16)] * 3)
    labelled = with_headers(cells, ["stage 1", "red", "bird"])
    assert labelled.shape[0] > cells.shape[0] and (labelled[:12] < 128).any()  # dark text


def test_compare_shows_failed_jobs_headers_and_metrics_first(tmp_path: Path) -> None:
    sweep = tmp_path / "multirun"
    ok, bad = sweep / "0-a", sweep / "1-b"
    (ok / "samples").mkdir(parents=True)
    (ok / "metrics.csv").write_text(
        "iteration,time," + ",".join(f"loss/G/t{i}" for i in range(4)) + "\n"
        "1,0.5," + ",".join("1.0" for _ in range(4)) + "\n"
    )
    (ok / "metrics.jsonl").write_text(json.dumps({"iteration": 1, "metrics": {"fid": 9.5}}) + "\n")
    rgb(ok / "samples" / "iter_0000001.png", 48, 16)
    (ok / "samples" / "columns.json").write_text('{"columns": ["label map", "EMA G", "real"]}')
    bad.mkdir()
    (bad / "error.txt").write_text("job 1 (b)\nTraceback ...\nValueError: lr must be positive\n")
    page = compare([sweep]).read_text()
    assert "Failed jobs (1)" in page and "ValueError: lr must be positive" in page
    head = page.split('<table id="final">')[1].split("</thead>")[0]
    assert head.index("metrics/fid") < head.index("loss/G/t0")
    assert "<span>label map</span><span>EMA G</span><span>real</span>" in page


def test_a_centres_choice_that_cannot_apply_is_said() -> None:
    label = torch.tensor([[7, 7], [26, 26]])
    centres = {7: torch.zeros(2, 3)}  # action=cluster found none for class 26 (or 11)
    notes = ignored_centres({26: 1, 7: 0, 11: 0}, centres, label)
    assert len(notes) == 2 and "class 11 has no clustered centres" in notes[0]
    assert "centres={26: 1} is ignored" in notes[1]


def test_a_required_value_left_unset_is_one_line() -> None:
    from ganzoo.cli.preflight import check_missing  # noqa: PLC0415

    with pytest.raises(ConfigError, match=r"^model.ckpt must be given \(\?\?\? in conf/\)"):
        check_missing(OmegaConf.create({"model": {"ckpt": "???", "x": 1}}))
