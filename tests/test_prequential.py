import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from mdl_utils import data, training
from mdl_utils.bits import per_sample_bits
from mdl_utils.codes import prequential as P

STEPS = [10, 20, 40, 80, 160, 300]


def settings(**kw):
    base = dict(model="logistic", timesteps=tuple(STEPS), epochs=4, patience=2, batch_size=32, lr=1e-2, seed=0)
    base.update(kw)
    return P.Recipe(**base)


@pytest.fixture(scope="module")
def synth():
    return data.load("synthetic", "train", n=300, seed=1), data.load("synthetic", "test", n=200, seed=1)


def run(train, test=None, **kw):
    r = P.prequential_code(train, test, settings(**kw), scale="smoke", device="cpu", progress=False)
    return r, r.arrays["bits"]


def test_paper_timesteps():
    mnist = P.settings("paper").recipe("mnist", "mlp", 60000).timesteps
    assert mnist[0] == 8 and mnist[-2] == 32768 and mnist[-1] == 60000 and len(mnist) - 1 == 13
    cifar = P.settings("paper").recipe("cifar10", "mlp", 50000).timesteps
    assert cifar[0] == 10 and cifar[-2] == 40960 and cifar[-1] == 50000 and len(cifar) - 1 == 13


@pytest.mark.parametrize("steps,match", [([10, 5, 20], "strictly increasing"), ([10, 10], "strictly increasing"),
                                         ([0, 10], ">= 1"), ([10, 400], "beyond"), ([], "non-empty"),
                                         ([1.5, 3], "integers"), ("abc", "integers")])
def test_bad_timesteps_are_rejected(steps, match):
    with pytest.raises(ValueError, match=match):
        P.check_timesteps(steps, 300)


def test_timesteps_end_at_n():
    assert P.check_timesteps([10, 20], 50) == [10, 20, 50]
    assert P.check_timesteps([10, 50], 50) == [10, 50]


def test_total_is_first_block_plus_per_sample_bits(synth):
    r, per_sample = run(*synth)
    t1 = STEPS[0]
    assert len(per_sample) == 300
    assert np.all(per_sample[:t1] == math.log2(10))
    assert r.codelength_bits == pytest.approx(t1 * math.log2(10) + per_sample[t1:].sum(), rel=1e-12)
    assert r.codelength_bits == pytest.approx(sum(r.curves["bits"]) + r.parts["first_block_bits"], rel=1e-12)
    assert r.parts["bits_calibrated"] == r.codelength_bits
    assert len(r.curves["t_start"]) == len(STEPS) - 1 and r.curves["cum_t"][-1] == 300
    assert r.curves["cum_bits"][-1] == pytest.approx(r.codelength_bits)


def test_same_seed_gives_identical_bits(synth):
    _, a = run(*synth)
    _, b = run(*synth)
    assert np.array_equal(a, b)
    _, c = run(*synth, seed=1)
    assert not np.array_equal(a, c)


def _relabel(d, j):
    y = d.y.clone()
    y[j] = (y[j] + 1) % d.K
    return dataclasses.replace(d, y=y)


def test_causality_later_labels_never_change_earlier_bits(synth):
    train, _ = synth
    _, base = run(train)
    # change a label inside block [t_3, t_4) = [40, 80): labels before 40 and their bits must not move
    j = 50
    _, changed = run(_relabel(train, j))
    assert np.array_equal(base[:40], changed[:40])
    assert np.array_equal(base[40:j], changed[40:j])  # same model, same labels
    assert base[j] != changed[j]                        # the changed label is encoded differently
    assert not np.array_equal(base[80:], changed[80:])  # later models were trained on it
    # changing the very last label changes nothing before it
    _, last = run(_relabel(train, 299))
    assert np.array_equal(base[:299], last[:299])


def test_synthetic_teacher_floor_and_shrinking_excess(one_torch_thread):
    train = data.load("synthetic", "train", n=4000, seed=0)
    r = P.prequential_code(train, None, settings(timesteps=(50, 100, 200, 400, 800, 1600, 3200), epochs=30,
                                                 patience=3, batch_size=256, lr=3e-2), scale="smoke", device="cpu",
                           progress=False)
    per_sample = r.arrays["bits"]
    floor = train.true_bits
    assert r.codelength_bits > floor.sum()
    ends = [50, 100, 200, 400, 800, 1600, 3200, 4000]
    excess = [(per_sample[a:b] - floor[a:b]).mean() for a, b in zip(ends[:-1], ends[1:])]
    assert excess[-1] < excess[0] and excess[-1] < 0.25
    assert all(e > -0.1 for e in excess)  # never meaningfully below the true model


def test_calibration_recovers_a_known_temperature():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(5000, 10, generator=g) * 2
    y = torch.multinomial(torch.softmax(z, 1), 1, generator=g).squeeze(1)
    assert P.fit_temperature(3 * z, y) == pytest.approx(3.0, rel=0.1)
    assert P.fit_temperature(z / 2, y) == pytest.approx(0.5, rel=0.1)
    assert P.fit_temperature(z[:5], y[:5]) == 1.0  # too few held-out labels: no calibration


def test_calibration_is_reported_both_ways(synth):
    cal, _ = run(*synth, calibrate=True)
    raw, _ = run(*synth, calibrate=False)
    assert cal.parts["bits_uncalibrated"] == pytest.approx(raw.codelength_bits)
    assert cal.parts["bits_calibrated"] == pytest.approx(cal.codelength_bits)
    assert raw.curves["temperature"] == [1.0] * (len(STEPS) - 1)


def _counting_fit(monkeypatch):
    calls = []
    real_fit = training.fit

    def counting_fit(*a, **k):
        calls.append(len(a[2]))
        return real_fit(*a, **k)

    monkeypatch.setattr(P, "fit", counting_fit)
    return calls


def test_interrupted_run_resumes_without_recomputing(synth, tmp_path, monkeypatch):
    ckpt = tmp_path / "ckpt.json"
    kw = dict(scale="smoke", device="cpu", progress=False, checkpoint_path=ckpt)
    full = P.prequential_code(*synth, settings(), **kw)
    state = json.loads(ckpt.read_text())
    state["units"] = state["units"][:-2]  # as if stopped after three blocks
    ckpt.write_text(json.dumps(state))
    calls = _counting_fit(monkeypatch)
    resumed = P.prequential_code(*synth, settings(), **kw)
    assert calls == [STEPS[-3], STEPS[-2]]  # only the two missing blocks were trained
    assert np.array_equal(full.arrays["bits"], resumed.arrays["bits"])
    assert resumed.codelength_bits == full.codelength_bits
    calls.clear()
    P.prequential_code(*synth, settings(epochs=5), **kw)
    assert len(calls) == len(STEPS) - 1  # other settings: the checkpoint is not reused


def test_a_checkpoint_of_other_data_is_never_resumed(synth, tmp_path, monkeypatch, capsys):
    """Same n, same settings, four labels moved between classes: a fresh run, not a resumed one."""
    train, test = synth
    ckpt = tmp_path / "ckpt.json"
    kw = dict(scale="smoke", device="cpu", progress=False, checkpoint_path=ckpt)
    P.prequential_code(train, test, settings(), **kw)
    state = json.loads(ckpt.read_text())
    state["units"] = state["units"][:-1]
    ckpt.write_text(json.dumps(state))
    changed = train
    for j in (200, 220, 240, 260):
        changed = _relabel(changed, j)
    calls = _counting_fit(monkeypatch)
    fresh = P.prequential_code(changed, test, settings(), scale="smoke", device="cpu", progress=False)
    capsys.readouterr()
    again = P.prequential_code(changed, test, settings(), **kw)
    assert "starting afresh" in capsys.readouterr().out
    assert len(calls) == 2 * (len(STEPS) - 1)  # every block trained twice: nothing resumed
    assert np.array_equal(again.arrays["bits"], fresh.arrays["bits"])


def test_epoch_records_do_not_change_the_code(synth):
    with_records, a = run(*synth)
    without, b = run(*synth, record_epochs=False)
    assert np.array_equal(a, b)
    epoch_bits = with_records.curves["epoch_bits"]
    for bits_e, best, ran, block_bits in zip(epoch_bits, with_records.curves["best_epoch"],
                                            with_records.curves["epochs_run"], with_records.curves["bits"]):
        assert len(bits_e) == ran + 1  # e = 0 (untrained) .. epochs run
        assert bits_e[best] == pytest.approx(block_bits, rel=1e-9)  # the restored weights are the best epoch's
    assert without.curves["epoch_bits"] == [[]] * len(epoch_bits)


def test_bob_recomputes_alices_probabilities_from_the_prefix(synth):
    train, _ = synth
    s = settings()
    per_sample = P.prequential_code(train, None, s, scale="smoke", device="cpu", progress=False).arrays["bits"]
    t_s, t_next = 40, 80
    logits = P.block_logits(train.x, train.y[:t_s].clone(), t_next, train.K, s, device="cpu")
    assert np.array_equal(per_sample_bits(logits, train.y[t_s:t_next]), per_sample[t_s:t_next])
