import json
import math

import numpy as np

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


@pytest.mark.parametrize("field,value,match", [
    ("codelength_bits", "lots", "'codelength_bits' is str"),
    ("codelength_bits", float("nan"), "finite"),
    ("codelength_bits", -3.0, "finite number >= 0"),
    ("params", [], "'params' is list"),
    ("n", 2.5, "'n' is float"),
    ("K", 1, "K = 1"),
    ("test_accuracy", "high", "'test_accuracy' is str"),
    ("parts", {"model_bits": "many"}, "parts\\['model_bits'\\]"),
    ("uniform_bits", 12.0, "not n log2 K"),
])
def test_wrong_typed_results_are_refused_naming_file_and_field(tmp_path, field, value, match):
    path = results.save(make(), "uniform", tmp_path)
    d = json.loads(path.read_text())
    d[field] = value
    path.write_text(json.dumps(d))
    with pytest.raises(ResultFileError, match=match) as e:
        results.load_file(path)
    assert str(path) in str(e.value)


def test_an_invalid_result_is_never_written(tmp_path):
    with pytest.raises(ResultFileError, match="refusing to write"):
        results.save(make(codelength_bits="lots"), "uniform", tmp_path)
    assert not (tmp_path / "uniform").exists() or not list((tmp_path / "uniform").iterdir())


def test_chapters_get_never_trains_without_recompute(results_tmp, capsys, monkeypatch):
    from mdl_utils import chapters
    from mdl_utils.codes import uniform

    def boom(*a, **k):
        raise AssertionError("must not compute")

    real = uniform.compute
    monkeypatch.setattr(uniform, "compute", boom)
    assert chapters.get("uniform", "synthetic", "uniform", "smoke") is None
    assert "python -m mdl_utils.run notebooks/01_uniform.md --scale smoke" in capsys.readouterr().out
    monkeypatch.setattr(uniform, "compute", real)
    r = chapters.get("uniform", "synthetic", "uniform", "smoke", recompute=True)
    monkeypatch.setattr(uniform, "compute", boom)
    assert chapters.get("uniform", "synthetic", "uniform", "smoke") == r
    held = chapters.get("uniform", "synthetic", "logistic", "smoke")  # a held-out Shannon code: another folder
    assert held is None and (results_tmp / "uniform" / "synthetic-uniform-smoke.json").is_file()


def test_arrays_are_stored_beside_their_result(tmp_path):
    r = make(arrays={"bits": np.arange(5, dtype=np.float64)}, codelength_bits=10.0)  # the per-sample bits' sum
    path = results.save(r, "uniform", tmp_path)
    assert (tmp_path / "uniform" / "mnist-uniform-smoke.bits.npy").is_file()
    back = results.load_file(path)
    assert np.array_equal(results.load_array("uniform", back, "bits", tmp_path), np.arange(5))
    with pytest.raises(ResultFileError, match="missing"):
        results.load_array("uniform", back, "other", tmp_path)


def test_codes_other_than_the_chapters_own_live_in_their_folder(tmp_path):
    r = make(code="shannon_heldout", model="logistic", seed=2)
    path = results.save(r, "uniform", tmp_path)
    assert path == tmp_path / "uniform" / "shannon_heldout" / "mnist-logistic-smoke-seed2.json"
    assert results.stored("uniform", tmp_path) == []
    assert results.stored("uniform", tmp_path, code="shannon_heldout") == [r] == results.stored(root=tmp_path)


def test_legacy_code_names_are_read(tmp_path):
    path = results.save(make(code="uniform"), "uniform", tmp_path)
    d = json.loads(path.read_text())
    d["code"] = "subspace"
    path.write_text(json.dumps(d))
    assert results.load_file(path).code == "intrinsic_dimension"


def test_results_root_finds_the_project(tmp_path, monkeypatch):
    monkeypatch.delenv("MDL_RESULTS", raising=False)
    (tmp_path / "_toc.yml").write_text("root: x\n")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    assert results.results_root() == tmp_path / "results"
    monkeypatch.setenv("MDL_RESULTS", str(tmp_path / "elsewhere"))
    assert results.results_root() == tmp_path / "elsewhere"


def test_slug_makes_file_names_and_never_merges_two_names():
    assert [results.slug(t) for t in ("mnist", "mnist_random", "switch-mlp-small_cnn-uniform", "cpu")] == \
        ["mnist", "mnist_random", "switch-mlp-small_cnn-uniform", "cpu"]  # unchanged: the stored results' names
    assert results.slug("folder:/a/b c").startswith("folder-a-b-c-")
    folders = ["folder:/a/b", "folder:/a-b", "folder:/a b", "folder:/a/b/", "folder:a/b"]
    assert len({results.slug(f) for f in folders}) == len(folders)  # two folders never share a result file
    name = results.result_path("uniform", "folder:/x", "mlp", "cpu", "/r").name
    assert name.startswith("folder-x-") and name.endswith("-mlp-cpu.json")
    assert results.slug("") != "" and results.slug("::") != results.slug("")


def test_a_result_file_holding_another_run_is_refused(tmp_path):
    """A file copied or renamed by hand (or two names that once shared a file) must not be read as this run."""
    path = results.save(make(dataset="folder:/data/a"), "uniform", tmp_path)
    other = results.result_path("uniform", "folder:/data/b", "uniform", "smoke", tmp_path)
    other.write_text(path.read_text())
    with pytest.raises(ResultFileError, match="holds the result of another run: dataset 'folder:/data/a'") as e:
        results.load("uniform", "folder:/data/b", "uniform", "smoke", tmp_path)
    assert str(other) in str(e.value) and "\n" not in str(e.value)
    assert results.load("uniform", "folder:/data/a", "uniform", "smoke", tmp_path).dataset == "folder:/data/a"


def test_missing_and_damaged_files_are_told_apart(tmp_path):
    with pytest.raises(results.MissingResultError):
        results.load_file(tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ResultFileError) as e:
        results.load_file(tmp_path / "bad.json")
    assert not isinstance(e.value, results.MissingResultError)


def test_in_a_kernel_a_damaged_file_is_also_told_to_the_kernels_stderr(tmp_path, monkeypatch):
    """A book build shows a failing cell only as 'CellExecutionError'; the kernel's own stderr reaches its log."""
    import io
    import sys
    import types

    path = tmp_path / "bad.json"
    path.write_text("{")
    real_stderr = io.StringIO()
    monkeypatch.setattr(sys, "__stderr__", real_stderr)
    with pytest.raises(ResultFileError):  # outside a kernel: the error only
        results.load_file(path)
    assert real_stderr.getvalue() == "" and not results.in_kernel()
    shell = type("ZMQInteractiveShell", (), {})()
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))
    with pytest.raises(ResultFileError):
        results.load_file(path)
    assert real_stderr.getvalue() == f"error: {path}: not valid JSON (Expecting property name enclosed in double " \
                                     f"quotes at line 1); delete {path} and recompute it (python -m mdl_utils.run " \
                                     f"...), or restore it with git\n"


@pytest.mark.parametrize("target,match", [
    ("dir", "is a directory; give a file name"),
    ("file.txt/x.mdl", "file.txt is a file, not a folder"),
])
def test_check_writable_refuses_before_any_work(tmp_path, target, match):
    (tmp_path / "dir").mkdir()
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ValueError, match=match):
        results.check_writable(tmp_path / target)
    assert results.check_writable(tmp_path / "new" / "deeper" / "x.mdl") == tmp_path / "new" / "deeper" / "x.mdl"
    assert not (tmp_path / "new").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["dir", "file.txt"]


def test_the_spread_over_seeds_is_shown_only_when_several_seeds_are_stored():
    from mdl_utils import tables

    runs = [make(seed=s, codelength_bits=b) for s, b in ((0, 1000.0), (1, 1300.0), (2, 1600.0))]
    other = make(seed=1, model="other", codelength_bits=9.0)
    assert tables.seed_spread(runs[0], [runs[0], other]) == ""  # one seed of this run: nothing to say
    assert tables.seed_spread(runs[0], runs + [other]) == "1.30 ± 0.30 over 3 seeds"  # mean 1.3 kbits, sd 0.3
    assert tables.codelength_kbits(runs[1], runs) == "1.30 (1.30 ± 0.30 over 3 seeds)"


def test_a_hand_edited_codelength_is_refused_beside_its_per_sample_bits(tmp_path):
    """A stored codelength must be the sum of the per-sample bits stored beside it (to their float32 rounding)."""
    bits = np.full(1000, 0.123456789)
    r = CodeResult(code="prequential", dataset="synthetic", model="mlp", scale="smoke", n=1000, K=10,
                   codelength_bits=math.fsum(bits), arrays={"bits": bits})
    path = results.save(r, "prequential", root=tmp_path)
    assert results.load_file(path).codelength_bits == r.codelength_bits  # float32 storage is within tolerance
    d = json.loads(path.read_text())
    d["codelength_bits"] -= 1.0
    path.write_text(json.dumps(d))
    with pytest.raises(results.ResultFileError, match=r"codelength_bits 122.4568 disagrees with the per-sample bits "
                                                      r"stored beside it in .*bits.npy \(sum 123.4568\)"):
        results.load_file(path)


def test_every_stored_result_enters_the_tuning_log_and_stays_there(tmp_path):
    """The tuning log keeps a line per stored result, also after the result is replaced or deleted, so that the
    charge for picking the shortest counts every configuration tried."""
    from mdl_utils.tables.paper import choice_charge

    a, b = (make(code="prequential", scale="cpu", model=m, codelength_bits=bits) for m, bits in (("a", 100.), ("b", 90.)))
    for r in (a, b, make(code="prequential", scale="cpu", model="b", codelength_bits=80.0), make(model="smoke")):
        results.save(r, "prequential", tmp_path)
    lines = results.tuning_log(tmp_path)
    assert [(e["model"], e["codelength_bits"]) for e in lines] == [("a", 100.0), ("b", 90.0), ("b", 80.0)]
    assert results.tried("prequential", "mnist", "cpu", tmp_path) == {("a", 0), ("b", 0)}  # smoke runs: not logged
    results.path_of(a, "prequential", tmp_path).unlink()  # a replaced or deleted run was still tried
    left = results.stored("prequential", tmp_path)
    assert [r.model for r in left] == ["b"] and choice_charge(left[0], left, tmp_path) == (2, 1.0)
    assert results.log_stored(tmp_path) == 0  # nothing stored is missing from the log


def test_the_committed_tuning_log_holds_every_stored_result():
    logged = {(e["code"], e["dataset"], e["model"], e["scale"], e["seed"], e["started"])
              for e in results.tuning_log()}
    for r in results.stored():
        assert r.scale == "smoke" or (r.code, r.dataset, r.model, r.scale, r.seed, r.provenance.get("started")) in logged, \
            f"{r.code}/{r.dataset}/{r.model}: run results.log_stored() after copying results in"
