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
        names = run.parameter_names(run.read_notebook(ROOT / c.notebook))
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


def test_rerun_command_round_trips_through_the_parser():
    cmd = chapters.rerun_command("uniform", "cpu", datasets=["mnist"], seed=1)
    assert cmd == "python -m mdl_utils.run notebooks/01_uniform.md --scale cpu -p datasets '[\"mnist\"]' -p seed 1"
    import shlex

    args = shlex.split(cmd)
    assert run.parse_value(args[args.index("datasets") + 1]) == ["mnist"]
