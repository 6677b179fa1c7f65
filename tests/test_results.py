import json
import math

import pytest

from mdl_utils import results
from mdl_utils.results import CodeResult, ResultFileError


def make(**kw):
    base = dict(code="uniform", dataset="mnist", model="uniform", scale="smoke", n=100, K=10,
                codelength_bits=332.19280948873626, test_accuracy=0.1, parts={"data_bits": 332.19},
                curves={"x": [1, 2, 3]}, params={"seed": 0})
    base.update(kw)
    return CodeResult(**base)


def test_ratio_and_uniform_bits():
    r = make(codelength_bits=100 * math.log2(10) / 4)
    assert r.uniform_bits == pytest.approx(100 * math.log2(10))
    assert r.ratio == pytest.approx(0.25)


def test_round_trip(tmp_path):
    with results.Stopwatch() as sw:
        pass
    r = make(provenance=results.provenance(device="cpu", stopwatch=sw, data_source="test"))
    path = results.save(r, "uniform", tmp_path)
    assert path == tmp_path / "uniform" / "mnist-uniform-smoke.json"
    back = results.load("uniform", "mnist", "uniform", "smoke", tmp_path)
    assert back == r
    stored = json.loads(path.read_text())
    assert stored["ratio"] == pytest.approx(r.ratio) and stored["uniform_bits"] == pytest.approx(r.uniform_bits)
    for key in ("git_commit", "torch", "device", "started", "wall_seconds", "data_source"):
        assert key in back.provenance
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    path = results.save(make(), "uniform", tmp_path)
    before = path.read_text()
    with pytest.raises(TypeError):
        results.write_json_atomic(path, {"bad": object()})
    assert path.read_text() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]


@pytest.mark.parametrize("content,match", [
    ("{not json", "not valid JSON"),
    ('{"hello": 1}', "not a CodeResult"),
    ('[1, 2]', "not a CodeResult"),
    ('{"schema": "mdl_utils.CodeResult/1", "code": "x"}', "lacks"),
])
def test_corrupt_or_foreign_file_names_the_file(tmp_path, content, match):
    path = tmp_path / "broken.json"
    path.write_text(content)
    with pytest.raises(ResultFileError, match=match) as e:
        results.load_file(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_load_or_compute_never_trains_without_recompute(tmp_path, capsys):
    def boom():
        raise AssertionError("must not compute")

    got = results.load_or_compute("uniform", "mnist", "uniform", "cpu", boom, recompute=False,
                                  rerun_command="python -m mdl_utils.run X --scale cpu", root=tmp_path)
    assert got is None
    assert "python -m mdl_utils.run X --scale cpu" in capsys.readouterr().out
    r = results.load_or_compute("uniform", "mnist", "uniform", "smoke", make, recompute=True,
                                rerun_command="", root=tmp_path)
    assert results.load_or_compute("uniform", "mnist", "uniform", "smoke", boom, recompute=False,
                                   rerun_command="", root=tmp_path) == r


def test_results_root_finds_the_project(tmp_path, monkeypatch):
    monkeypatch.delenv("MDL_RESULTS", raising=False)
    (tmp_path / "_toc.yml").write_text("root: x\n")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    assert results.results_root() == tmp_path / "results"
    monkeypatch.setenv("MDL_RESULTS", str(tmp_path / "elsewhere"))
    assert results.results_root() == tmp_path / "elsewhere"


def test_slug_makes_file_names():
    assert results.slug("folder:/a/b c") == "folder-a-b-c"
    assert results.result_path("uniform", "folder:/x", "mlp", "cpu", "/r").name == "folder-x-mlp-cpu.json"
