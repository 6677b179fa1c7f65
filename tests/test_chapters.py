"""Every chapter: one module of its name with compute(), typed settings at every scale, a smoke run end to end."""

import dataclasses
import inspect

import pytest

from mdl_utils import chapters, codes, results, scales

from .conftest import ROOT, real_data_root
from .reference import mixture_prior_bits

CHAPTERS = [c.name for c in codes.CHAPTERS]


@pytest.mark.parametrize("name", CHAPTERS)
def test_one_name_per_chapter(name):
    c = codes.chapter(name)
    assert (ROOT / c.notebook).is_file() and (ROOT / "mdl_utils" / "codes" / f"{name}.py").is_file()
    assert c.module.CHAPTER == name
    params = inspect.signature(c.module.compute).parameters
    assert list(params)[:3] == ["dataset", "model", "scale"]
    assert {k: params[k].default for k in ("seed", "device", "data_root")} == {"seed": 0, "device": "auto",
                                                                                "data_root": None}


@pytest.mark.parametrize("name", CHAPTERS)
@pytest.mark.parametrize("scale", scales.SCALES)
def test_every_scale_resolves_to_complete_typed_settings(name, scale):
    s = codes.chapter(name).module.settings(scale)
    assert dataclasses.is_dataclass(s) and type(s).__dataclass_params__.frozen
    assert scales.type_errors(s) == [], scales.type_errors(s)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(s, dataclasses.fields(s)[0].name, None)


def test_scale_overrides_name_real_fields():
    @dataclasses.dataclass(frozen=True)
    class S:
        epochs: int = 3

    assert scales.resolve(S, {"cpu": {"epochs": 1}}, "cpu").epochs == 1
    assert scales.resolve(S, {"cpu": {"epochs": 1}}, "paper").epochs == 3
    with pytest.raises(ValueError, match="unknown fields \\['epoch'\\]"):
        scales.resolve(S, {"cpu": {"epoch": 1}}, "cpu")
    with pytest.raises(ValueError, match="unknown scale"):
        scales.resolve(S, {}, "huge")
    assert scales.type_errors(S(epochs="3")) and not scales.type_errors(S())


def test_type_matching():
    m = scales.matches
    assert m(3, int) and not m(True, int) and not m(3.0, int) and m(3, float) and m(None, int | None)
    assert m((1, None), tuple[int | None, ...]) and not m((1, "a"), tuple[int, ...])
    assert m({"a": (1,)}, dict[str, tuple[int, ...]]) and not m({"a": [1]}, dict[str, tuple[int, ...]])
    assert m((0.5, 2.0), tuple[float, float]) and not m((0.5,), tuple[float, float])


# ------------------------------------------------------------- smoke runs


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """Every chapter's runs at scale=smoke (chapter order: switch reads the prequential runs), in a scratch
    results store: on MNIST when MDL_DATA is set, else on the synthetic task."""
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("results")
    mp.setenv("MDL_RESULTS", str(root))
    dataset = "mnist" if real_data_root() else "synthetic"
    got = {name: {run: chapters.get(name, *run, "smoke", recompute=True)
                  for run in chapters.runs(name, dataset, "smoke")} for name in CHAPTERS}
    yield root, got
    mp.undo()


@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_computes_and_stores_at_smoke_scale(smoke, name):
    root, got = smoke
    assert got[name], name
    for (dataset, model), r in got[name].items():
        assert r.scale == "smoke" and r.model == model and r.code in codes.chapter(name).codes
        assert results.load_file(results.path_of(r, name, root)) == r  # stored as returned
        for key in ("git_commit", "device", "precision", "started", "wall_seconds", "data_source", "torch"):
            assert key in r.provenance, key


def test_smoke_numbers_hold_the_codes_invariants(smoke):
    _, got = smoke
    ds = next(iter(got["uniform"]))[0]
    uniform = got["uniform"][(ds, "uniform")]
    assert uniform.codelength_bits == pytest.approx(uniform.n * 3.321928094887362, rel=1e-15)
    preq = got["prequential"][(ds, "mlp")]
    assert preq.codelength_bits < preq.uniform_bits  # the network learned something within 600 labels
    assert preq.arrays["bits"].sum() == pytest.approx(preq.codelength_bits, rel=1e-12)
    switch = got["switch"][(ds, "switch-mlp-uniform")]
    stay = mixture_prior_bits([0] * preq.n, 2)  # the prior's cost of never switching: log2 M + log2 n
    assert switch.codelength_bits <= min(preq.codelength_bits, preq.uniform_bits) + stay + 1e-9
    assert got["bytes"][(ds, "prequential_mlp")].parts["computed_codelength_bits"] == preq.codelength_bits
