"""A new user's own image folder through every chapter, the runner, the coder's command line and the book."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mdl_utils import (
    chapters,
    checkpoint,
    coder,
    codes,
    compress,
    decompress,
    results,
    run,
    tables,
)
from mdl_utils.codes import switch as S
from mdl_utils.results import ResultFileError

from .conftest import ROOT
from .test_data import make_folder
from .test_run import myst_notebook

UNIFORM = ROOT / "notebooks" / "01_uniform.md"
CLASSES = {"coat": 40, "shirt": 40, "boot": 40}


def grey_folder(root: Path, per_class: dict[str, int], test: int = 10) -> Path:
    """An image folder like Fashion-MNIST's: 28 x 28 grey PNGs, train/ and test/ with the same classes."""
    make_folder(root, {"train": per_class, "test": {c: test for c in per_class}}, mode="L", shape=(28, 28))
    return root


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A scratch results store and cache, and a 3-class folder of 120 training and 30 test images."""
    mp = pytest.MonkeyPatch()
    tmp = tmp_path_factory.mktemp("own")
    mp.setenv("MDL_RESULTS", str(tmp / "results"))
    mp.setenv("MDL_CACHE", str(tmp / "cache"))
    yield tmp / "results", f"folder:{grey_folder(tmp / 'fashion', CLASSES)}"
    mp.undo()


@pytest.fixture(scope="module")
def every_chapter(store):
    """Every chapter's smoke runs on the folder (chapter order: switch reads the prequential runs)."""
    _, dataset = store
    return {c.name: {run_: chapters.get(c.name, *run_, "smoke", recompute=True)
                     for run_ in chapters.runs(c.name, dataset, "smoke")} for c in codes.CHAPTERS}


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("chapter", [c.name for c in codes.CHAPTERS])
def test_every_chapter_stores_and_reads_back_a_folder_dataset(store, every_chapter, chapter):
    _, dataset = store
    got = every_chapter[chapter]
    assert got, f"{chapter} runs nothing on an image folder"
    for (ds, model), r in got.items():
        assert r.dataset == ds and ds.startswith(dataset)
        assert chapters.get(chapter, ds, model, "smoke") == r  # book mode reads what was stored
        assert tables.label(r.dataset).startswith("fashion")
        assert r.K == 3 and r.n <= 120
    assert tables.paper_kbits(chapter, dataset) == ""  # no paper value for a dataset the paper does not have


def test_models_are_picked_by_input_shape_code_names_included(tmp_path, monkeypatch):
    """A folder gets its input kind's row, minus the entries whose networks do not fit (the bytes chapter's
    entries are code names: "uniform" has no network, "prequential_mlp" the mlp, a mixture several)."""
    monkeypatch.setenv("MDL_CACHE", str(tmp_path / "cache"))
    make_folder(tmp_path / "tiny_rgb", {"train": {"a": 2, "b": 2}})  # 8 x 6 colour images: no lenet
    table = {"cifar10": ("uniform", "prequential_mlp", "prequential_lenet", "switch-mlp-lenet-uniform",
                         "prequential_mlp_warm"), "mnist": ("lenet",)}
    assert codes.models_for("bytes", f"folder:{tmp_path / 'tiny_rgb'}", table, "cpu") == \
        ("uniform", "prequential_mlp", "prequential_mlp_warm")
    assert [codes.networks("bytes", m, "mnist", "cpu") for m in ("two_part_vgg_mnist", "self_switch_small_cnn",
                                                                  "uniform", "prequential_cnn4_warm")] == \
        [["vgg_mnist"], ["small_cnn"], [], ["cnn4"]]  # from the recipes: cnn4_warm trains a cnn4
    assert codes.networks("switch", "switch-mlp_warm-small_cnn-uniform", "mnist", "cpu") == ["mlp", "small_cnn"]


def test_a_scale_larger_than_the_folder_uses_the_whole_split_and_says_so(store, every_chapter):
    _, dataset = store
    preq = every_chapter["prequential"][(dataset, "mlp")]
    assert preq.n == 120 and preq.params["timesteps"][-1] == 120
    assert preq.params["n_clamped"] == [{"split": "test", "asked": 200, "used": 30},
                                        {"split": "train", "asked": 600, "used": 120}]
    assert "train split: all 120 samples, the scale asks for 600" in preq.note
    assert "n = 600 was asked" in preq.provenance["data_source"]


def test_the_uniform_notebook_renders_a_folder_dataset(store, every_chapter, capsys):
    _, dataset = store
    t0 = time.perf_counter()
    out = run.run(UNIFORM, "smoke", {"datasets": [dataset]}, progress=False)
    seconds = time.perf_counter() - t0
    nb = json.loads(out.read_text())
    outputs = [o for c in nb["cells"] for o in c.get("outputs", [])]
    assert not [o for o in outputs if o["output_type"] == "error"]
    text = "".join("".join(o.get("data", {}).get("text/markdown", "")) for o in outputs)
    row = next(line for line in text.splitlines() if line.startswith("| fashion |"))  # the uniform table
    assert "| 190.2 |" in row and "K: 3" in text  # the folder's name, 120 log2 3 bits, K = 3 (one row: folded)
    with capsys.disabled():
        print(f"\n[uniform notebook on an image folder: {seconds:.1f} s]")


# ---------------------------------------------------------------- compress


def test_compress_help_says_it_sends_every_label_and_needs_a_scale(capsys):
    with pytest.raises(SystemExit):
        compress.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "all of them" in text and "send only the first n labels (default: all of the split)" in text
    with pytest.raises(SystemExit):
        compress.main(["--code", "uniform", "--dataset", "synthetic", "x.mdl"])
    assert "the following arguments are required: --scale" in capsys.readouterr().err


def test_compress_sends_all_3000_images_of_a_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MDL_CACHE", str(tmp_path / "cache"))
    folder = grey_folder(tmp_path / "f3000", {"coat": 1000, "shirt": 1000, "boot": 1000}, test=1)
    out = tmp_path / "labels.mdl"
    assert compress.main(["--code", "uniform", "--dataset", f"folder:{folder}", "--scale", "smoke", str(out),
                          "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert f"encoding 3,000 labels of folder:{folder} (all of the train split, order seed 0)" in printed
    assert "(3,000 labels, K=3)" in printed
    assert coder.unpack(coder.read(out)).header.n == 3000
    assert compress.main(["--code", "uniform", "--dataset", f"folder:{folder}", "--scale", "smoke", "--n", "5000",
                          str(tmp_path / "more.mdl"), "--no-progress"]) == 1
    assert capsys.readouterr().err == (f"error: --n 5000: folder:{folder} has 3,000 training samples; pass --n "
                                       f"from 1 to 3000, or leave --n out to send all of them\n")


@pytest.mark.parametrize("target,match", [("adir", "is a directory; give a file name"),
                                          ("afile/labels.mdl", "afile is a file, not a folder")])
def test_compress_checks_the_output_before_any_work(tmp_path, monkeypatch, capsys, target, match):
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("x")
    monkeypatch.setattr(compress.files, "encode", lambda *a, **k: pytest.fail("encoded before the check"))
    assert compress.main(["--code", "uniform", "--dataset", "synthetic", "--scale", "smoke", "--n", "50",
                          str(tmp_path / target)]) == 1
    captured = capsys.readouterr()
    assert match in captured.err and captured.err.count("\n") == 1 and "encoding" not in captured.out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "afile"]  # no <dir>.tmp left behind


@pytest.mark.parametrize("args", [["--seed", "-1"], ["--threads", "0"], ["--seed", str(2 ** 64)]])
def test_compress_refuses_a_seed_out_of_range_or_no_threads(tmp_path, capsys, args):
    """The file stores seed + 1 (0: no shuffle), so a seed of -1 would read back as an unshuffled order; a seed
    above 2^32 - 1 used to end in an opaque overflow."""
    assert compress.main(["--code", "uniform", "--dataset", "synthetic", "--scale", "smoke", "--n", "20", *args,
                          str(tmp_path / "x.mdl")]) == 1
    assert "the order seed must be 0 to 4,294,967,295 and the thread count 1 or more" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_compress_never_overwrites_a_file_unless_told(tmp_path, capsys):
    out = tmp_path / "x.mdl"
    out.write_bytes(b"precious")
    args = ["--code", "uniform", "--dataset", "synthetic", "--scale", "smoke", "--n", "20", "--no-progress", str(out)]
    assert compress.main(args) == 1
    assert capsys.readouterr().err == f"error: {out} exists; give another name, or --force to overwrite it\n"
    assert out.read_bytes() == b"precious"
    assert compress.main([*args, "--force"]) == 0 and coder.unpack(out.read_bytes()).header.n == 20


def test_the_coder_leaves_no_temporary_file_when_writing_fails(tmp_path):
    (tmp_path / "adir").mkdir()
    with pytest.raises(OSError):
        coder.write(tmp_path / "adir", b"labels")
    assert [p.name for p in tmp_path.iterdir()] == ["adir"] and not list((tmp_path / "adir").iterdir())


def test_decompress_checks_its_output_and_writes_exactly_that_name(tmp_path, capsys):
    labels = tmp_path / "u.mdl"
    assert compress.main(["--code", "uniform", "--dataset", "synthetic", "--scale", "smoke", "--n", "40",
                          str(labels), "--no-progress"]) == 0
    (tmp_path / "adir").mkdir()
    capsys.readouterr()
    for out, match in ((tmp_path / "adir", "is a directory"), (labels, "is the labels file being read")):
        assert decompress.main([str(labels), "--out", str(out), "--no-progress"]) == 1
        assert match in capsys.readouterr().err
    assert decompress.main([str(labels), "--out", str(tmp_path / "y"), "--no-progress"]) == 0
    assert "decoded 40 labels of synthetic" in capsys.readouterr().out
    assert np.load(tmp_path / "y").shape == (40,) and not (tmp_path / "y.npy").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "u.mdl", "y"]


def test_ctrl_c_in_compress_and_decompress_is_one_line(tmp_path, monkeypatch, capsys):
    def interrupt(*a, **k):
        raise KeyboardInterrupt

    labels = tmp_path / "u.mdl"
    assert compress.main(["--code", "uniform", "--dataset", "synthetic", "--scale", "smoke", "--n", "40",
                          str(labels), "--no-progress"]) == 0
    monkeypatch.setattr(compress.files, "encode", interrupt)
    monkeypatch.setattr(decompress.files, "decode", interrupt)
    capsys.readouterr()
    assert compress.main(["--code", "uniform", "--dataset", "synthetic", "--scale", "smoke", "--n", "40",
                          str(tmp_path / "v.mdl")]) == 130
    assert decompress.main([str(labels), "--out", str(tmp_path / "y.npy")]) == 130
    assert capsys.readouterr().err == "interrupted; nothing was stored\n" * 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["u.mdl"]


# ---------------------------------------------------------------- resumable state


def test_two_folders_never_share_a_result_or_a_checkpoint_file():
    a, b = "folder:/data/a-b", "folder:/data/a/b"  # one file name before names got a hash
    assert results.result_path("prequential", a, "mlp", "cpu") != results.result_path("prequential", b, "mlp", "cpu")


def test_an_unreadable_checkpoint_is_never_resumed(tmp_path, capsys):
    path = tmp_path / "ckpt.json"
    for content in ("[1, 2]", "{broken", '{"fingerprint": "other", "units": [{"t_start": 10}]}'):
        path.write_text(content)
        ckpt = checkpoint.Checkpoint(path, "mine", total=4, label="folder:/x/mlp")
        assert ckpt.units == {} and 10 not in ckpt
    ckpt.add({"t_start": 10})
    resumed = checkpoint.Checkpoint(path, "mine")
    assert 10 in resumed and "resuming after block 1 of 4 of folder:/x/mlp" in capsys.readouterr().out


# ---------------------------------------------------------------- results read by other codes


def _invalid_prequential_file(root: Path) -> Path:
    r = results.CodeResult(code="prequential", dataset="synthetic", model="mlp", scale="smoke", n=100, K=10,
                           codelength_bits=300.0, params={"timesteps": [10, 100], "order_seed": 0},
                           arrays={"bits": np.full(100, 3.0)})
    path = results.save(r, "prequential", root)
    d = json.loads(path.read_text())
    d["codelength_bits"] = "lots"
    path.write_text(json.dumps(d))
    return path


def test_the_switch_code_refuses_an_invalid_prequential_file_naming_it(results_tmp):
    path = _invalid_prequential_file(results_tmp)
    with pytest.raises(ResultFileError) as e:
        S.compute("synthetic", "switch-mlp-uniform", "smoke")
    assert str(path) in str(e.value) and "'codelength_bits'" in str(e.value)


def test_the_bytes_notebooks_comparison_reads_through_the_validated_loader(results_tmp):
    path = _invalid_prequential_file(results_tmp)
    with pytest.raises(ResultFileError, match="'codelength_bits' is str") as e:
        chapters.get("prequential", "synthetic", "mlp", "smoke")
    assert str(path) in str(e.value)


# ---------------------------------------------------------------- the book build


PAGE = myst_notebook("A chapter", 'from mdl_utils import chapters\nr = chapters.get("uniform", "mnist", "uniform", "cpu")')


def test_a_book_build_with_a_damaged_results_file_names_the_file_in_its_log(tmp_path):
    """jupyter-book logs a failing cell as 'Executing notebook failed: CellExecutionError' only; the kernel's
    stderr also reaches the build log, and results.load_file writes the file and the fix there."""
    (tmp_path / "_config.yml").write_text("title: t\nonly_build_toc_files: true\nexecute:\n"
                                          "  execute_notebooks: force\n")
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: page\n")
    (tmp_path / "page.md").write_text(PAGE)
    damaged = tmp_path / "results" / "uniform" / "mnist-uniform-cpu.json"
    damaged.parent.mkdir(parents=True)
    damaged.write_text('{"schema": "mdl_utils.CodeResult/1", "code": "uniform"')
    env = {k: v for k, v in os.environ.items() if k != "MDL_RESULTS"}
    jb = Path(sys.executable).with_name("jupyter-book")
    proc = subprocess.run([str(jb), "build", str(tmp_path), "-W", "--keep-going"], capture_output=True, text=True,
                          env=env, timeout=300, check=False)
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "CellExecutionError" in log
    assert f"error: {damaged}: not valid JSON" in log and f"delete {damaged} and recompute it" in log


# ---------------------------------------------------------------- the book's page


def page_commands(section: str = "## Your own image folder") -> list[str]:
    """The commands of the fenced bash blocks of a section of book/reproducing.md."""
    text = (ROOT / "book" / "reproducing.md").read_text()
    body = text.split(section, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", body, flags=re.DOTALL)
    return [line for block in blocks for line in block.replace("\\\n", " ").splitlines() if line.strip()]


@pytest.mark.usefixtures("one_torch_thread")
def test_the_pages_own_folder_commands_run(tmp_path, monkeypatch, capsys):
    """Every command of the section, at the smoke scale, run by its module's main() in a folder holding
    data/fashion (a small generated one) and notebooks/, with a scratch results store and cache."""
    commands = page_commands()
    mains = {"mdl_utils.run": run.main, "mdl_utils.compress": compress.main, "mdl_utils.decompress": decompress.main}
    assert [c.split()[2] for c in commands] == ["mdl_utils.run"] * 3 + ["mdl_utils.compress", "mdl_utils.decompress"]
    grey_folder(tmp_path / "data" / "fashion", {"coat": 20, "shirt": 20, "boot": 20}, test=5)
    (tmp_path / "notebooks").symlink_to(ROOT / "notebooks")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MDL_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("MDL_CACHE", str(tmp_path / "cache"))
    outputs = []
    for command in commands:
        argv = shlex.split(command.replace("--scale cpu", "--scale smoke"))
        assert argv[:2] == ["python", "-m"] and mains[argv[2]](argv[3:]) == 0, command
        outputs.append(capsys.readouterr().out)
    folder, store = f"folder:{(tmp_path / 'data' / 'fashion').resolve()}", tmp_path / "results"
    assert results.load("prequential", folder, "mlp", "smoke", store).n == 60
    assert results.load("switch", folder, "switch-mlp-uniform", "smoke", store, code="switch").n == 60
    assert "encoding 60 labels of folder:data/fashion (all of the train split" in outputs[3]
    assert "decoded 60 labels of folder:data/fashion" in outputs[4] and (tmp_path / "labels.npy").is_file()


def test_the_pages_interruption_messages_are_the_codes(tmp_path):
    """The messages the page shows are those the runner prints (same words, same numbers)."""
    text = (ROOT / "book" / "reproducing.md").read_text()
    folder = tmp_path / "prequential"
    (folder / ".partial").mkdir(parents=True)
    ckpt = checkpoint.Checkpoint(folder / ".partial" / "x.json", "f", total=9,
                                 label="folder:/home/me/data/fashion/small_cnn")
    for t in range(8):
        ckpt.add({"t_start": t})
    assert checkpoint.interruption_message(folder, 0) in text
    found = checkpoint.pending(folder, {"x": "unused"})[0]
    assert run.RESUME_NOTE.format(found) in text
    assert checkpoint.interruption_message(tmp_path / "uniform", 0) in text
    assert compress.INTERRUPTED in text


def test_a_folder_decodes_under_any_spelling_of_its_path_or_a_copy(tmp_path, monkeypatch, capsys):
    """The inputs hash holds the images and their classes, not the path: a trailing slash, a relative path, a
    symlink and a copy of the folder all decode; other images are still refused."""
    import shutil

    monkeypatch.setenv("MDL_CACHE", str(tmp_path / "cache"))
    folder = grey_folder(tmp_path / "digits", {"zero": 6, "one": 6}, test=1)
    out = tmp_path / "labels.mdl"
    assert compress.main(["--code", "prequential", "--model", "mlp", "--dataset", f"folder:{folder}", "--scale",
                          "smoke", str(out), "--no-progress"]) == 0
    shutil.copytree(folder, tmp_path / "copy")
    (tmp_path / "link").symlink_to(folder)
    monkeypatch.chdir(tmp_path)
    for spelling in (f"{folder}/", "digits", "./digits/", str(tmp_path / "link"), str(tmp_path / "copy")):
        assert decompress.main([str(out), "--dataset", f"folder:{spelling}", "--model", "mlp", "--no-progress"]) == 0
    capsys.readouterr()
    other = grey_folder(tmp_path / "other", {"zero": 6, "one": 6}, test=1)
    (other / "train" / "one" / "000.png").unlink()
    shutil.copy(folder / "train" / "zero" / "000.png", other / "train" / "one" / "000.png")
    assert decompress.main([str(out), "--dataset", f"folder:{other}", "--model", "mlp", "--no-progress"]) == 1
    assert "wrong inputs" in capsys.readouterr().err


def test_chapters_say_which_models_do_not_fit_small_images_and_fall_back(tmp_path, monkeypatch, capsys):
    """8 x 8 images: LeNet does not fit; chapters 03 and 04 used to run nothing and exit 0."""
    monkeypatch.setenv("MDL_CACHE", str(tmp_path / "cache"))
    from .test_data import make_folder

    make_folder(tmp_path / "d8", {"train": {"a": 5, "b": 5}, "test": {"a": 2, "b": 2}}, mode="L", shape=(8, 8))
    dataset = f"folder:{tmp_path / 'd8'}"
    for chapter in ("network_compression", "intrinsic_dimension"):
        assert chapters.runs(chapter, dataset, "smoke") == [(dataset, "mlp")]
        said = capsys.readouterr().out
        assert said.startswith(f"{dataset} (1x8x8 inputs): left out lenet (inputs of shape") and \
            "too small for a 5x5 convolution); running mlp instead" in said
    assert chapters.runs("two_part", dataset, "smoke") == [(dataset, "mlp")]
    assert "left out lenet" in capsys.readouterr().out
