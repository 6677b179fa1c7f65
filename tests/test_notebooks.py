"""Every chapter runs end to end at scale=smoke through the runner (papermill)."""

import json

import pytest

from mdl_utils import results, run

from .conftest import ROOT, real_data_root

CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.md"))


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_runs_at_smoke_scale(notebook, results_tmp):
    params = {} if real_data_root() else {"datasets": ["synthetic"]}
    out = run.run(notebook, "smoke", params, progress=False)
    executed = json.loads(out.read_text())
    assert executed["metadata"]["papermill"]["exception"] is None
    assert executed["metadata"]["papermill"]["parameters"]["scale"] == "smoke"
    stored = results.stored(run.chapter_of(notebook))
    assert stored, "the chapter stored no result"
    for r in stored:
        assert r.scale == "smoke" and r.codelength_bits > 0
        assert r.provenance["wall_seconds"] >= 0 and r.provenance["data_source"]


def test_uniform_chapter_smoke_numbers(results_tmp):
    run.run(ROOT / "notebooks" / "01_uniform.md", "smoke", {"datasets": ["synthetic"]}, progress=False)
    u = results.load("uniform", "synthetic", "uniform", "smoke")
    s = results.load("uniform", "synthetic", "logistic", "smoke")
    assert u.codelength_bits == pytest.approx(u.n * 3.321928094887362)
    # the teacher has the logistic form: fit on 2000 samples it beats uniform but not the true model
    floor = s.curves["true_bits_per_sample"]
    assert floor < s.codelength_bits / s.n < 3.3219
