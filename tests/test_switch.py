"""Switch codes (App. E): the DP and the forward algorithm against brute force, the prior, the chapter."""

import math
from itertools import product

import numpy as np
import pytest

from mdl_utils import results
from mdl_utils.codes import prequential as P
from mdl_utils.codes import switch as S
from .reference import mixture_prior_bits


def brute_force_best(unit_bits, max_switches=None):
    """min over all sequences of data + sequence_prior_bits (exponential)."""
    a = np.asarray(unit_bits, dtype=np.float64)
    m, t_units = a.shape
    kmax = t_units - 1 if max_switches is None else max_switches
    best = math.inf
    for seq in product(range(m), repeat=t_units):
        k = sum(seq[t] != seq[t - 1] for t in range(1, t_units))
        if k <= kmax:
            best = min(best, a[list(seq), range(t_units)].sum() + S.sequence_prior_bits(k, t_units, m, kmax))
    return best


def brute_force_mixture(unit_bits):
    """-log2 sum_s pi(s) 2^(-data(s)) by explicit enumeration (exponential)."""
    a = np.asarray(unit_bits, dtype=np.float64)
    m, t_units = a.shape
    terms = [-(mixture_prior_bits(seq, m) + a[list(seq), range(t_units)].sum())
             for seq in product(range(m), repeat=t_units)]
    top = max(terms)
    return -(top + math.log2(sum(2.0 ** (x - top) for x in terms)))


def random_instance(seed, m, t):
    rng = np.random.default_rng(seed)
    return rng.gamma(2.0, 3.0, size=(m, t))


@pytest.mark.parametrize("seed,m,t,cap", [(0, 2, 5, None), (1, 3, 4, None), (2, 3, 6, None), (3, 4, 4, None),
                                          (4, 2, 8, None), (5, 1, 5, None), (6, 3, 7, 1), (7, 2, 8, 2)])
def test_dp_equals_exhaustive_search(seed, m, t, cap):
    a = random_instance(seed, m, t)
    a[0, t // 2:] += 6.0  # make switching attractive
    best = S.best_sequence(a, max_switches=cap)
    assert best.total_bits == pytest.approx(brute_force_best(a, cap), abs=1e-9)
    # the reported sequence really has those data bits and that description length
    seq = best.per_unit(t)
    assert best.data_bits == pytest.approx(a[seq, range(t)].sum())
    assert best.prior_bits == pytest.approx(S.sequence_prior_bits(len(best.segments) - 1, t, m, cap))


@pytest.mark.parametrize("seed,m,t", [(0, 2, 5), (1, 3, 4), (2, 3, 6), (3, 4, 4), (6, 2, 9)])
def test_forward_algorithm_equals_explicit_sum(seed, m, t):
    a = random_instance(seed, m, t)
    assert S.mixture_bits(a).sum() == pytest.approx(brute_force_mixture(a), abs=1e-9)


def test_the_prior_is_a_probability_distribution():
    m, t = 3, 5
    total = sum(2.0 ** -mixture_prior_bits(s, m) for s in product(range(m), repeat=t))
    assert total == pytest.approx(1.0, abs=1e-12)
    # the explicit sequence code is complete: Kraft's sum is exactly 1, with or without a cap on switches
    for cap in (None, 2):
        switches = [sum(s[i] != s[i - 1] for i in range(1, t)) for s in product(range(m), repeat=t)]
        kraft = sum(2.0 ** -S.sequence_prior_bits(k, t, m, cap) for k in switches if cap is None or k <= cap)
        assert kraft == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_mixture_invariants(seed):
    a = random_instance(seed, 3, 40)
    a[1, 20:] *= 0.2  # strategy 1 catches up late: switching pays
    mix = S.mixture_bits(a).sum()
    best = S.best_sequence(a)
    seq = best.per_unit(a.shape[1])
    assert mix <= best.data_bits + mixture_prior_bits(seq, 3) + 1e-9
    for m in range(3):
        assert mix <= a[m].sum() + mixture_prior_bits([m] * a.shape[1], 3) + 1e-9
    assert best.total_bits <= a.sum(axis=1).min() + S.sequence_prior_bits(0, a.shape[1], 3) + 1e-9


def test_one_strategy_is_itself():
    a = random_instance(7, 1, 30)
    assert S.mixture_bits(a).sum() == pytest.approx(a.sum(), rel=1e-12)
    best = S.best_sequence(a)
    assert best.total_bits == pytest.approx(a.sum()) and best.segments == [(0, 0)]


def test_no_underflow_on_long_sequences():
    rng = np.random.default_rng(0)
    a = rng.gamma(2.0, 3.0, size=(3, 60000))
    a[0] += 5.0
    bits = S.mixture_bits(a)
    assert np.all(np.isfinite(bits)) and bits.sum() <= a.sum(axis=1).min() + mixture_prior_bits([1] * 60000, 3)


def test_self_switch_never_worse_than_prequential_plus_choice_bits():
    rng = np.random.default_rng(1)
    epoch_bits = [list(rng.gamma(3.0, 10.0, size=e + 1)) for e in (3, 5, 2, 8)]
    best_epochs = [2, 4, 1, 6]  # the epochs the plain prequential code kept
    plain = 10.0 + sum(e[b] for e, b in zip(epoch_bits, best_epochs))
    total, choices, choice_bits = S.self_switch(10.0, epoch_bits)
    assert total <= plain + sum(math.log2(len(e)) for e in epoch_bits) + 1e-9
    assert choice_bits == pytest.approx(math.log2(4 * 6 * 3 * 9))
    assert [e[c] for e, c in zip(epoch_bits, choices)] == [min(e) for e in epoch_bits]
    with pytest.raises(ValueError, match="record_epochs"):
        S.self_switch(0.0, [[1.0], []])


def test_block_units_and_bad_input():
    per_sample = np.arange(10, dtype=float)
    assert S.block_units(per_sample, [2, 5, 10]).tolist() == [1.0, 9.0, 35.0]
    with pytest.raises(ValueError, match="timesteps end"):
        S.block_units(per_sample, [2, 5])
    with pytest.raises(ValueError, match="shape"):
        S.mixture_bits(np.zeros(5))
    with pytest.raises(ValueError, match="non-negative"):
        S.best_sequence(np.array([[1.0, -2.0]]))


def test_switch_never_trains_a_missing_prequential_run(results_tmp):
    with pytest.raises(results.ResultFileError, match="run the prequential chapter first") as e:
        S.compute("synthetic", "switch-mlp-uniform", "smoke")
    assert "python -m mdl_utils.run notebooks/06_prequential.md --scale smoke" in str(e.value)
    assert not (results_tmp / "prequential").exists()  # nothing was computed or stored


def test_chapter_runs_name_the_mixture_and_the_self_switch_codes():
    names = P.settings("cpu").models["mnist"]
    assert {"mlp", "mlp_warm"} <= set(names)  # the paper's recipe and ours, side by side
    runs = S.runs("mnist", "cpu")
    assert runs[0] == ("mnist", "-".join(["switch", *names, "uniform"]))
    assert [S.code_of(m) for _, m in runs] == ["switch"] + ["self_switch"] * (len(runs) - 1)


def test_self_switch_only_for_runs_that_record_their_epochs(monkeypatch):
    monkeypatch.setitem(P.SCALES, "smoke", {**P.SCALES["smoke"], "models": {"mnist": ("mlp", "quiet")},
                                            "recipes": {"quiet": {"model": "mlp", "record_epochs": False}}})
    assert S.runs("mnist", "smoke") == [("mnist", "switch-mlp-quiet-uniform"), ("mnist", "mlp")]


def test_a_run_stored_without_epoch_records_has_no_self_switch(tmp_path, monkeypatch):
    """A recipe that records its epochs now, but whose stored run was made before it did: no self-switch until
    that run is redone (the stored result, not the recipe, has the bits the self-switch code reads)."""
    from mdl_utils import results
    monkeypatch.setenv("MDL_RESULTS", str(tmp_path))
    monkeypatch.setitem(P.SCALES, "smoke", {**P.SCALES["smoke"], "models": {"mnist": ("mlp",)}})
    assert S.runs("mnist", "smoke") == [("mnist", "switch-mlp-uniform"), ("mnist", "mlp")]  # not stored: the recipe
    for epoch_bits, expected in (([[], []], []), ([[4.0], [3.0, 2.0]], [("mnist", "mlp")])):
        results.save(results.CodeResult("prequential", "mnist", "mlp", "smoke", 4, 4, 5.0,
                                        curves={"epoch_bits": epoch_bits}), "prequential")
        assert S.runs("mnist", "smoke") == [("mnist", "switch-mlp-uniform")] + expected


def test_switch_gain_notes_bound_the_block_sequences_saving_by_hand(tmp_path, monkeypatch):
    """Two runs on 4 labels in blocks [0,2) and [2,4), K = 4 (uniform: 4 bits a block): run a costs 3 + 1 bits,
    run b 1 + 2, so b is the best single run (3 bits), and a beats it on the second block only, by 1 bit: the
    sentence says so, with the mixture's saving (1 - 2.7/3) and the paper's (1 - 4.05/4.1)."""
    from mdl_utils import results
    from mdl_utils.tables.prequential import epoch_choice_words, switch_gain_notes

    monkeypatch.setenv("MDL_RESULTS", str(tmp_path))
    runs = []
    for name, bits in (("a", [1.5, 1.5, 0.5, 0.5]), ("b", [0.5, 0.5, 1.0, 1.0])):
        r = results.CodeResult("prequential", "mnist", name, "cpu", 4, 4, float(sum(bits)),
                               arrays={"bits": np.array(bits)})
        results.save(r, "prequential")
        runs.append(r)
    sw = results.CodeResult("switch", "mnist", "switch-a-b-uniform", "cpu", 4, 4, 2.7, params={"timesteps": [2, 4]})
    (note,) = switch_gain_notes(runs, [sw])
    assert switch_gain_notes({("mnist", "a"): runs[0], ("mnist", "b"): runs[1], ("mnist", "c"): None},
                             {("mnist", "switch"): sw}) == [note]  # the chapter passes its dicts
    assert "10.0% shorter than the best single run (b, 0.00 kbits)" in note and "switch saved 1%" in note
    assert "beats b on 1 of its 2 blocks, by 1 bits in all (33.3%)" in note
    assert epoch_choice_words([1, 2, 3, None], [1, 3, 2, 4]) == (
        "self-switch kept early stopping's evaluation on 1 of 3 blocks, and chose an earlier one on 1 and a later "
        "one on 1.")
    assert epoch_choice_words([2], [2]) == "self-switch kept early stopping's evaluation on 1 of 1 blocks."
