import pytest

from mdl_utils import chapters, codes, run

from .conftest import ROOT

UNIFORM = ROOT / "notebooks" / "01_uniform.md"


def test_chapter_names():
    assert run.chapter_of("notebooks/01_uniform.md") == "uniform"
    assert run.chapter_of("06_prequential.md") == "prequential"
    assert run.chapter_of("summary.md") == "summary"


def test_every_chapter_has_the_same_parameters():
    for c in codes.CHAPTERS:
        names = list(run.parameter_defaults(run.read_notebook(ROOT / c.notebook)))
        assert {"scale", "datasets", "models", "seed", "recompute"} <= set(names), c.name


@pytest.mark.parametrize("text,value", [("1", 1), ("0.5", 0.5), ("true", True), ("null", None),
                                        ('["mnist"]', ["mnist"]), ("None", None), ("mnist", "mnist"),
                                        ("['a', 'b']", ["a", "b"])])
def test_parse_value(text, value):
    assert run.parse_value(text) == value


@pytest.mark.parametrize("argv,match", [
    ([str(UNIFORM), "--scale", "huge"], "unknown scale 'huge'"),
    ([str(UNIFORM), "--scale", "smoke", "-p", "lerning_rate", "0.1"], "unknown parameter 'lerning_rate'"),
    ([str(UNIFORM), "--scale", "smoke", "-p", "scale", "cpu"], "use --scale"),
    (["notebooks/99_nothing.md", "--scale", "smoke"], "no notebook at"),
])
def test_bad_runs_are_one_line_errors(argv, match, capsys, results_tmp):
    assert run.main(argv) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1
    assert not results_tmp.exists()  # nothing ran


def test_a_results_store_that_is_a_file_is_one_line(tmp_path, monkeypatch, capsys):
    """MDL_RESULTS at a file used to end in a NotADirectoryError traceback, after the kernel had started."""
    store = tmp_path / "results"
    store.write_text("not a folder")
    monkeypatch.setenv("MDL_RESULTS", str(store))
    assert run.main([str(UNIFORM), "--scale", "smoke", "-p", "datasets", '["synthetic"]']) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: the results store {store} (MDL_RESULTS) cannot hold results: ") and \
        err.count("\n") == 1


def test_rerun_command_round_trips_through_the_parser():
    cmd = chapters.rerun_command("uniform", "cpu", datasets=["mnist"], seed=1)
    assert cmd == "python -m mdl_utils.run notebooks/01_uniform.md --scale cpu -p datasets '[\"mnist\"]' -p seed 1"
    import shlex

    args = shlex.split(cmd)
    assert run.parse_value(args[args.index("datasets") + 1]) == ["mnist"]


# ------------------------------------------------------------ typed parameters


@pytest.mark.parametrize("args,message", [
    (["-p", "seed", "1.5"], "error: -p seed expects an integer, got 1.5"),
    (["-p", "seed", "abc"], "error: -p seed expects an integer, got abc"),
    (["-p", "seed", "true"], "error: -p seed expects an integer, got true"),
    (["-p", "datasets", "mnist"], ("error: -p datasets expects a JSON list of strings, got mnist; "
                                   "write -p datasets '[\"mnist\"]'")),
    (["-p", "datasets", '"mnist"'], ("error: -p datasets expects a JSON list of strings, got \"mnist\"; "
                                     "write -p datasets '[\"mnist\"]'")),
    (["-p", "datasets", '["fashion"]'], "error: -p datasets: unknown dataset 'fashion'; choose mnist, cifar10"),
    (["-p", "datasets", '["folder:{tmp}/no_folder"]'], "error: -p datasets: image folder {tmp}/no_folder does not"),
    (["-p", "models", "mlp"], ("error: -p models expects a JSON list of strings or null, got mlp; "
                               "write -p models '[\"mlp\"]'")),
    (["-p", "models", "[1, 2]"], "error: -p models expects a JSON list of strings or null, got [1, 2], e.g."),
    (["-p", "seed", "1", "-p", "seed", "2"], "error: -p seed is given more than once"),
    (["-p", "data_root", "{tmp}/no_data"], "error: -p data_root: no folder {tmp}/no_data"),
    (["-p", "datasets", "[]"], "error: -p datasets is an empty list, which runs nothing"),
    (["-o", "{tmp}"], "error: {tmp} is a directory; give a file name, e.g. {tmp}/01_uniform.ipynb"),
    (["-p", "models", "[]"], "error: -p models is an empty list, which runs nothing; give the models, or null"),
    (["-p", "device", "0"], "error: -p device 0: Invalid device string: '0'; give auto, cpu or cuda"),
])
def test_wrongly_typed_parameters_are_one_line_errors_naming_the_parameter(args, message, capsys, results_tmp):
    tmp = results_tmp.parent.resolve()  # paths that do not exist, in a folder of this test
    args, message = [a.replace("{tmp}", str(tmp)) for a in args], message.replace("{tmp}", str(tmp))
    assert run.main([str(UNIFORM), "--scale", "smoke", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1, err
    assert not results_tmp.exists()  # nothing ran


def test_parameters_are_typed_as_their_defaults(tmp_path, monkeypatch):
    nb = run.read_notebook(UNIFORM)
    typed = run.check_parameters(nb, {"seed": "3", "device": "0", "models": "null", "datasets": '["mnist"]',
                                      "data_root": "None"})
    assert typed == {"seed": 3, "device": "0", "models": None, "datasets": ["mnist"], "data_root": None}
    assert run.check_parameters(nb, {"models": "['mlp']"}) == {"models": ["mlp"]}
    assert run.expected_type("x", 0.5) is float and run.check_parameters(nb, {"seed": "7"})["seed"] == 7
    (tmp_path / "imgs").mkdir()
    monkeypatch.chdir(tmp_path)  # a relative folder is where the command runs, not the notebook's folder
    assert run.checked_values({"datasets": ["folder:imgs", "mnist"]}) == {
        "datasets": [f"folder:{tmp_path.resolve() / 'imgs'}", "mnist"]}


def test_run_accepts_typed_values_from_python_too():
    nb = run.read_notebook(UNIFORM)
    with pytest.raises(run.RunError, match="-p datasets expects a JSON list of strings"):
        run.check_parameters(nb, {"datasets": "mnist"})


# ------------------------------------------------------------ Ctrl-C


def _checkpoint(folder, stem, units, total, label=None, age=0.0):
    import json
    import os
    import time

    path = folder / ".partial" / f"{stem}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"fingerprint": "f", "label": label, "total": total,
                                "units": [{"t_start": i} for i in range(units)]}))
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


def test_the_interruption_message_reads_the_newest_checkpoint_of_the_run(tmp_path):
    import time

    from mdl_utils import checkpoint

    folder = tmp_path / "prequential"
    start = time.time() - 60
    _checkpoint(folder, "mnist-mlp-cpu", 2, 9, age=3600)  # left by an earlier run: not this one's
    assert checkpoint.interruption_message(folder, start) == "interrupted; nothing was stored"
    _checkpoint(folder, "folder-x-1234ab-mlp-cpu", 3, 9, age=30)
    _checkpoint(folder, "folder-x-1234ab-small_cnn-cpu", 5, 9, label="folder:/x/small_cnn", age=1)
    assert checkpoint.interruption_message(folder, start) == \
        "interrupted after block 5 of 9 of folder:/x/small_cnn; rerun the same command to resume"
    (folder / ".partial" / "folder-x-1234ab-small_cnn-cpu.json").unlink()
    labels = {"folder-x-1234ab-mlp-cpu": "folder:/x/mlp"}
    assert checkpoint.interruption_message(folder, start, labels) == \
        "interrupted after block 3 of 9 of folder:/x/mlp; rerun the same command to resume"
    assert checkpoint.pending(folder, labels) == ["block 3 of 9 of folder:/x/mlp"]


def test_the_interruption_message_without_a_checkpoint_counts_what_was_stored(tmp_path):
    import time

    from mdl_utils import checkpoint

    folder, start = tmp_path / "uniform", time.time() - 1
    (folder / "shannon_heldout").mkdir(parents=True)
    assert checkpoint.interruption_message(folder, start) == "interrupted; nothing was stored"
    (folder / "shannon_heldout" / "mnist-logistic-cpu.json").write_text("{}")
    assert checkpoint.interruption_message(folder, start).startswith(
        "interrupted after storing 1 result(s), the last ")


def test_checkpoint_labels_name_the_runs_files():
    labels = run.checkpoint_labels(ROOT / "notebooks" / "06_prequential.md", "cpu",
                                   {"datasets": '["mnist"]', "seed": "2"})
    assert labels["mnist-mlp-cpu-seed2"] == "mnist/mlp" and "mnist-small_cnn-cpu-seed2" in labels
    assert run.checkpoint_labels(ROOT / "notebooks" / "06_prequential.md", "cpu", {"seed": "x"}) == {}


def myst_notebook(title: str, *cells: str) -> str:
    """A jupytext MyST notebook: a title and code cells (a cell starting with ':tags:' keeps its tags line)."""
    head = ("---\njupytext:\n  text_representation: {extension: .md, format_name: myst, format_version: 0.13}\n"
            "kernelspec: {display_name: Python 3 (ipykernel), language: python, name: python3}\n---\n")
    return head + f"# {title}\n" + "".join(f"\n```{{code-cell}} ipython3\n{c.strip()}\n```\n" for c in cells)


SLEEPER = myst_notebook("A cell that sleeps", ':tags: [parameters]\n\nscale = "smoke"\nrecompute = False',
                        'import os, pathlib, time\npathlib.Path("kernel.pid").write_text(str(os.getpid()))\n'
                        'time.sleep(120)')


def test_ctrl_c_stops_the_kernel_and_prints_one_line(tmp_path):
    """A real SIGINT to the runner's process group, as a terminal's Ctrl-C sends it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    (tmp_path / "99_sleeper.md").write_text(SLEEPER)
    env = {**os.environ, "MDL_RESULTS": str(tmp_path / "results")}
    # a terminal's Ctrl-C reaches a process whose SIGINT is not ignored (as it is under `pytest &`): restore it
    restore = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)
    proc = subprocess.Popen([sys.executable, "-m", "mdl_utils.run", str(tmp_path / "99_sleeper.md"), "--scale",
                             "smoke"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=restore)  # noqa: PLW1509 (no threads started here)
    pid_file, deadline = tmp_path / "kernel.pid", time.time() + 120
    while not pid_file.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert pid_file.exists(), proc.communicate()
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.rstrip().splitlines()[-1] == "interrupted; nothing was stored"
    assert "Traceback" not in err + out
    kernel = int(pid_file.read_text())
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):
        os.kill(kernel, 0)
