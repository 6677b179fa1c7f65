import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from mdl_utils import coder, data, models, results, scales, training
from mdl_utils.bits import per_sample_bits, total
from mdl_utils.codes import algorithm2 as A
from mdl_utils.codes.calibration import hedged_bits, label_probabilities
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


def numpy_probabilities(z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """softmax(z)[i, y_i] by NumPy's log-sum-exp (not the library's softmax)."""
    top = z.max(axis=1, keepdims=True)
    log_p = z - top - np.log(np.exp(z - top).sum(axis=1, keepdims=True))
    return np.exp(log_p[np.arange(len(labels)), labels])


def test_total_is_first_block_plus_per_sample_bits(synth):
    """The codelength, recomputed by hand: t_1 log2 K, then each block's labels under the Bayesian mixture of the
    softmax (by NumPy's log-sum-exp, not the library's) of the calibrated and of the raw logits of a chain trained
    on the labels before, the calibrated one's weight updated label by label from 1/2 (kept in [2^-16, 1 - 2^-16])
    wherever the block has a temperature."""
    r, per_sample = run(*synth)
    train, _ = synth
    t1 = STEPS[0]
    assert len(per_sample) == 300 and np.all(per_sample[:t1] == math.log2(10))
    chain, by_hand, w = P.Chain(train.x, train.K, settings(), "cpu"), [t1 * math.log2(10)], 0.5
    for t_s, t_next in zip(STEPS[:-1], STEPS[1:]):
        z, temperature = chain.next_block_raw(train.y[:t_s], t_next)
        y = train.y[t_s:t_next].numpy()
        p_t = numpy_probabilities((z / temperature).double().numpy(), y)
        p_raw = numpy_probabilities(z.double().numpy(), y)
        for a, b in zip(p_t, p_raw):
            if temperature == 1.0:
                by_hand.append(-math.log2(b))
                continue
            by_hand.append(-math.log2(w * a + (1 - w) * b))
            w = min(max(w * a / (w * a + (1 - w) * b), 2.0 ** -16), 1 - 2.0 ** -16)
    assert any(t != 1.0 for t in r.curves["temperature"])
    assert r.codelength_bits == pytest.approx(math.fsum(by_hand), rel=1e-12)
    assert r.codelength_bits == total(per_sample)  # the one exactly rounded sum
    assert r.parts["first_block_bits"] == t1 * math.log2(10) == pytest.approx(r.codelength_bits - sum(r.curves["bits"]))
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

    monkeypatch.setattr(A, "fit", counting_fit)
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
    c = with_records.curves
    for bits_e, best, ran, per_label, t0, t1 in zip(epoch_bits, c["best_epoch"], c["epochs_run"],
                                                    c["bits_per_sample_temperature"], c["t_start"], c["t_end"]):
        assert len(bits_e) == ran + 1  # e = 0 (untrained) .. epochs run
        # the restored weights are the best epoch's (epochs are recorded with their temperatures, unhedged)
        assert bits_e[best] == pytest.approx(per_label * (t1 - t0), rel=1e-9)
    assert without.curves["epoch_bits"] == [[]] * len(epoch_bits)


def test_bob_recomputes_alices_probabilities_from_the_prefix(synth):
    train, _ = synth
    s = settings()
    r = P.prequential_code(train, None, s, scale="smoke", device="cpu", progress=False)
    t_s, t_next = 160, 300
    z, temperature = P.Chain(train.x, train.K, s, "cpu").next_block_raw(train.y[:t_s].clone(), t_next)  # cold: any t_s
    assert temperature != 1.0  # 16 held-out labels: a hedged block
    y = train.y[t_s:t_next]
    w = r.curves["calibration_weight"][r.curves["t_start"].index(t_s)]  # the hedge's weight Bob has reached
    bits, _ = hedged_bits(*label_probabilities(z, temperature, y), np.ones(len(y), bool), w)
    assert np.array_equal(bits, r.arrays["bits"][t_s:t_next])


# ------------------------------------------------------------ warm chains (issue 16)



WARM = dict(warm_start=True, schedule="cosine", restore_best=False, patience=None)


def warm(**kw):
    """A warm recipe: each block continues the previous one, cosine learning rate, last weights kept."""
    return settings(**{**WARM, **kw})


def test_warm_and_cold_chains_differ_and_are_deterministic(synth):
    _, cold = run(*synth, **{**WARM, "warm_start": False})
    w1, a = run(*synth, **WARM)
    _, b = run(*synth, **WARM)
    assert np.array_equal(a, b) and not np.array_equal(a[STEPS[2]:], cold[STEPS[2]:])
    _, carried = run(*synth, **WARM, carry_optimizer=True)
    assert np.array_equal(carried[:STEPS[1]], a[:STEPS[1]]) and not np.array_equal(carried, a)
    assert w1.params["warm_start"] is True and "warm start" in w1.note


@pytest.mark.parametrize("carry", [False, True])
def test_causality_holds_for_warm_chains(synth, carry):
    """A changed label i changes nothing encoded before i, though every later model descends from it."""
    train, _ = synth
    recipe = warm(carry_optimizer=carry)

    def bits(d):
        return P.prequential_code(d, None, recipe, scale="smoke", device="cpu", progress=False).arrays["bits"]

    base = bits(train)
    for j, block_end in ((50, 80), (25, 40)):
        changed = bits(_relabel(train, j))
        assert np.array_equal(base[:j], changed[:j])
        assert base[j] != changed[j]
        assert not np.array_equal(base[block_end:], changed[block_end:])  # the chain was trained on it


def test_bob_decodes_a_warm_chain_from_the_labels_he_decoded(synth):
    """Alice range-codes every block with her chain; Bob, who never sees her labels, decodes each block with his
    own chain trained on the labels he decoded so far, and recovers every label (and her per-sample bits)."""
    train, _ = synth
    recipe = warm(carry_optimizer=True, min_steps=8, eval_every=3, calibrate=False)  # the chain, unhedged
    per_sample = P.prequential_code(train, None, recipe, scale="smoke", device="cpu", progress=False).arrays["bits"]
    alice, rc = P.Chain(train.x, train.K, recipe, "cpu"), coder.RangeCoder()
    rc.encode(train.y[:STEPS[0]].numpy(), coder.uniform_probabilities(STEPS[0], train.K))
    for t_s, t_next in zip(STEPS[:-1], STEPS[1:]):
        rc.encode(train.y[t_s:t_next].numpy(), coder.probabilities(alice.next_block(train.y[:t_s], t_next)))
    bob, words = P.Chain(train.x.clone(), train.K, recipe, "cpu"), coder.RangeCoder(rc.words())
    decoded = torch.from_numpy(words.decode(coder.uniform_probabilities(STEPS[0], train.K)))
    for t_s, t_next in zip(STEPS[:-1], STEPS[1:]):
        z_bob = bob.next_block(decoded.clone(), t_next)
        assert np.array_equal(per_sample_bits(z_bob, train.y[t_s:t_next]), per_sample[t_s:t_next])
        decoded = torch.cat([decoded, torch.from_numpy(words.decode(coder.probabilities(z_bob)))])
    assert torch.equal(decoded, train.y)


def test_warm_chains_refuse_disorder(synth):
    train, _ = synth
    chain = P.Chain(train.x, train.K, warm(), "cpu")
    with pytest.raises(ValueError, match="block 1 is next, not block 3"):
        chain.next_block(train.y[:40], 80)
    with pytest.raises(ValueError, match="timesteps"):
        chain.next_block(train.y[:33], 80)
    with pytest.raises(ValueError, match="carry_optimizer needs warm_start"):
        settings(carry_optimizer=True)
    with pytest.raises(ValueError, match="unknown schedule"):
        settings(schedule="linear")


def _interrupt_after(monkeypatch, n_fits: int):
    """Make the n_fits+1-th training call fail, as an interruption during that block."""
    calls, real_fit = [], training.fit

    def failing_fit(*a, **k):
        if len(calls) == n_fits:
            raise KeyboardInterrupt
        calls.append(len(a[2]))
        return real_fit(*a, **k)

    monkeypatch.setattr(A, "fit", failing_fit)


def test_a_resumed_warm_chain_gives_bit_identical_bits(synth, tmp_path, monkeypatch):
    train, test = synth
    recipe = warm(carry_optimizer=True)
    kw = dict(scale="smoke", device="cpu", progress=False)
    full = P.prequential_code(train, test, recipe, **kw).arrays["bits"]
    ckpt = tmp_path / "ckpt.json"
    _interrupt_after(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        P.prequential_code(train, test, recipe, checkpoint_path=ckpt, **kw)
    assert [p.name for p in P.chain_state_files(ckpt)] == ["ckpt.chain-40.pt"]  # the state after block 3 only
    monkeypatch.undo()
    calls = _counting_fit(monkeypatch)
    resumed = P.prequential_code(train, test, recipe, checkpoint_path=ckpt, **kw)
    assert calls == STEPS[3:-1]  # blocks 4 and 5 only
    assert np.array_equal(resumed.arrays["bits"], full)
    # without the saved state the chain is replayed from its first block: same bits again
    state = json.loads(ckpt.read_text())
    state["units"] = state["units"][:3]
    ckpt.write_text(json.dumps(state))
    for p in P.chain_state_files(ckpt):
        p.unlink()
    calls.clear()
    replayed = P.prequential_code(train, test, recipe, checkpoint_path=ckpt, **kw)
    assert calls == STEPS[:-1] and np.array_equal(replayed.arrays["bits"], full)


def test_named_recipes_are_runs_with_their_architecture_in_params(synth):
    s = P.settings("cpu")
    r = s.recipe("mnist", "mlp_warm", 60000)
    assert r.model == "mlp" and r.warm_start and r.schedule == "cosine" and not r.restore_best
    assert s.recipe("mnist", "mlp", 60000) == P.Recipe(model="mlp", timesteps=r.timesteps, epochs=20, patience=3)
    named = [m for table in (s.models, s.ablations) for ms in table.values() for m in ms]
    assert all(m in s.recipes or m in models.ARCHITECTURES for m in named) and "-" not in "".join(named)
    assert all(s.recipe("mnist", m, 100).model in models.ARCHITECTURES for m in named)
    bad = dataclasses.replace(s, recipes={"x": {"model": "mlp", "epoch": 3}})
    with pytest.raises(ValueError, match=r"unknown Recipe fields \['epoch'\]"):
        bad.recipe("mnist", "x", 100)
    result = P.prequential_code(synth[0], None, warm(), scale="smoke", device="cpu", progress=False, name="lw")
    assert result.model == "lw" and result.params["model"] == "logistic" and result.params["warm_start"]


def test_step_budgets_reach_small_blocks(synth):
    r, _ = run(*synth, min_steps=12, epochs=3, patience=None, record_epochs=False)
    assert r.curves["steps_run"][0] == 12  # 9 training samples: 3 epochs of one step, raised to 12
    assert r.curves["steps_run"][-1] == 3 * math.ceil(144 / 32)  # 160 labels, 144 to train on: 3 x 5 steps
    r, _ = run(*synth, max_steps=3, epochs=50, patience=None, record_epochs=False)
    assert set(r.curves["steps_run"]) == {3}


def test_blocks_below_uniform_below_are_sent_uniformly_in_a_warm_chain(synth):
    r, bits = run(*synth, **WARM, uniform_below=40)
    assert np.allclose(bits[:40], math.log2(10), rtol=0, atol=1e-6)  # blocks after 10 and 20 labels: uniform
    assert r.curves["steps_run"][:2] == [0, 0] and r.curves["steps_run"][2] > 0
    assert all(len(e) == 1 for e in r.curves["epoch_bits"][:2])  # self-switch: only "epoch 0", the uniform code
    _, fresh = run(*synth, **WARM)
    assert not np.array_equal(bits[40:80], fresh[40:80])  # block 3 starts from the seed, not from block 2


def test_per_epoch_logits_of_a_warm_chain_are_the_recorded_epoch_bits(synth):
    """What the self-switch coder replays (next_block(per_epoch=True)) is what the chapter recorded."""
    train, _ = synth
    recipe = warm(eval_every=2)
    r = P.prequential_code(train, None, recipe, scale="smoke", device="cpu", progress=False)
    chain = P.Chain(train.x, train.K, recipe, "cpu")
    for (t_s, t_next), recorded in zip(zip(STEPS[:-1], STEPS[1:]), r.curves["epoch_bits"]):
        per_epoch = chain.next_block(train.y[:t_s], t_next, per_epoch=True)
        assert [total(per_sample_bits(z, train.y[t_s:t_next])) for z in per_epoch] == recorded


def test_an_unknown_run_lists_architectures_and_named_recipes():
    with pytest.raises(ValueError, match="unknown run 'nosuch'; give a model \\(Algorithm 2: .*cnn4, .*; yours: "
                                         "mdl_utils.models.register\\) or a named recipe \\(cnn4_cold, .*mlp_warm.*\\)"):
        P.settings("cpu").recipe("mnist", "nosuch", 100)


def test_calibration_effect_adds_up_block_by_block():
    """The summary's "bits saved" is the stored total difference, and equals the per-block savings summed;
    a block counts as costing bits exactly when its calibrated bits/sample exceed the raw ones."""
    from mdl_utils.tables.prequential import calibration_effect
    curves = {"t_start": [0, 8, 16], "t_end": [8, 16, 32], "temperature": [1.0, 2.0, 0.5],
              "bits_per_sample_uncalibrated": [3.0, 2.0, 1.0], "bits_per_sample": [3.0, 1.5, 1.25],
              "bits_per_sample_temperature": [3.0, 1.25, 1.5], "bits": [24.0, 12.0, 20.0]}
    r = results.CodeResult("prequential", "mnist", "probe", "smoke", 32, 10, 44.0, curves=curves,
                           parts={"bits_uncalibrated": 24.0 + 16.0 + 16.0, "bits_calibrated": 24.0 + 12.0 + 20.0,
                                  "bits_temperature": 24.0 + 10.0 + 24.0})
    assert calibration_effect(r) == {"blocks": 3, "t_min": 0.5, "t_max": 2.0, "saved_bits": 0.0,
                                     "temperature_saved_bits": -2.0, "blocks_costing": 1, "worst_block_bits": 4.0}
    checked = 0
    for stored in results.stored("prequential", code="prequential"):
        if "bits_per_sample_uncalibrated" not in stored.curves:
            continue
        c, e = stored.curves, calibration_effect(stored)
        per_block = sum((u - b) * (t1 - t0) for u, b, t0, t1 in zip(c["bits_per_sample_uncalibrated"],
                                                                    c["bits_per_sample"], c["t_start"], c["t_end"]))
        assert e["saved_bits"] == pytest.approx(per_block, rel=1e-9, abs=1e-6), (stored.dataset, stored.model)
        checked += 1
    assert checked >= 5


def test_epoch_records_do_not_change_a_warm_augmented_batch_norm_code():
    """vgg6_warm's ingredients (batch norm, warm start, augmentation by shifts and flips, a cosine schedule,
    uniform first blocks, NHWC): recording each epoch's bits (self-switch) leaves every label's bits as they are,
    so the best networks can record them at no cost in bits."""
    g = torch.Generator().manual_seed(3)
    x, y = torch.rand(64, 3, 32, 32, generator=g), torch.randint(0, 10, (64,), generator=g)
    ds = data.Dataset("toy", "train", x, y, 10, [str(k) for k in range(10)], "test tensors", 0, np.arange(64))
    recipe = dataclasses.replace(P.settings("cpu").recipe("cifar10", "vgg6_warm", 64), timesteps=(8, 44, 56, 64),
                                 epochs=2, min_steps=0, batch_size=16, uniform_below=40, min_calibration=4)
    with training.torch_threads(1):
        codes = {flag: P.prequential_code(ds, None, dataclasses.replace(recipe, record_epochs=flag), scale="smoke",
                                          device="cpu", progress=False) for flag in (True, False)}
    assert np.array_equal(codes[True].arrays["bits"], codes[False].arrays["bits"])
    epoch_bits = codes[True].curves["epoch_bits"]
    assert [len(e) for e in epoch_bits] == [1, 3, 3] and codes[False].curves["epoch_bits"] == [[]] * 3
    assert epoch_bits[0][0] == pytest.approx(36 * math.log2(10))  # the uniform block (t_s = 8 < 40)


def test_the_ablation_table_measures_test_time_views_against_the_same_chain_without_them(monkeypatch):
    """cnn4_warm_tta is measured against cnn4_warm (its blocks train the same way; recording epochs or not changes
    no bit), not against Algorithm 2; the other runs keep their references."""
    from mdl_utils.tables import prequential as T
    from mdl_utils.tables import render

    shown = []
    monkeypatch.setattr(render, "display_markdown", shown.append)

    def run(name, bits, **changes):
        params = scales.as_params(P.settings("cpu").recipe("mnist", name, 60000))
        return results.CodeResult("prequential", "mnist", name, "cpu", 60000, 10, bits, params={**params, **changes},
                                  provenance={"wall_seconds": 600.0})

    found = [run("cnn4", 4000.0), run("cnn4_warm", 3300.0, record_epochs=False), run("cnn4_warm_tta", 3100.0),
             run("cnn4_cold", 4100.0)]
    refs = {r.model: (T._reference(r, found)[0] or r).model for r in found}
    assert refs == {"cnn4": "cnn4", "cnn4_warm": "cnn4", "cnn4_warm_tta": "cnn4_warm", "cnn4_cold": "cnn4"}
    T.prequential_ablation_table({("mnist", r.model): r for r in found})
    row = next(line for line in shown[0].splitlines() if "| cnn4_warm_tta |" in line)
    assert "| the image and its four one-pixel shifts |" in row and "| cnn4_warm |" in row and "| 200 |" in row
    assert T.prequential_recipe_words(found[2].params).endswith(
        "shifts <= 2 px; predicts from the image and its four one-pixel shifts")
    assert "predicts" not in T.prequential_recipe_words(found[1].params)
    (sentence,) = T.prediction_gains({("mnist", r.model): r for r in found})
    assert sentence.startswith("MNIST: `cnn4_warm_tta` predicts each block from the image and its four one-pixel "
                               "shifts and codes")
    assert "3.10 kbits instead of 3.30 (`cnn4_warm`, one chain, its own weights and the image alone): 200 bits " \
           "(6.1%) fewer, in 1.00x" in sentence
    assert T.prediction_words({"members": 2, "tta": "flip"}) == \
        "2 chains side by side, each from the image and its mirror image"
    assert T.prediction_words({"members": 3}) == "3 chains side by side"
    assert T.prediction_words({"ema": 0.99}) == \
        "the average of its weights over the block's training steps (EMA, decay 0.99)"
    ema = run("mlp_warm_ema", 11012.0)
    plain = [run("mlp", 13000.0), run("mlp_warm", 11000.0), ema]
    assert T._reference(ema, plain)[0].model == "mlp_warm"
    (worse,) = T.prediction_gains({("mnist", r.model): r for r in plain})
    assert "11.01 kbits instead of 11.00 (`mlp_warm`" in worse and ": 12 bits (0.1%) more, in 1.00x" in worse
