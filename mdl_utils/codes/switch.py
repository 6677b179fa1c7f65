"""Chapter 7: switch and self-switch codes (paper App. E; Van Erven, Grunwald & de Rooij 2012).

Given M prediction strategies run on the same transmission order, with
``unit_bits[m, t]`` the codelength of unit t (a sample, or a block of samples)
under strategy m (e.g. prequential codes of several models, and the uniform
code), a switch sequence s uses one strategy per stretch of units.

Two real codes over switch sequences:

* **Best switch sequence** (Def. 4 with an explicit prior): Alice sends the
  number of switches k (uniform over 0..T-1: log2 T bits), their positions
  (log2 C(T-1, k)), the first strategy (log2 M) and each next one among the
  other M-1 (log2 (M-1) each), then the labels under the sequence. The optimal
  sequence is found by dynamic programming.
* **Switch mixture**: the Bayesian mixture sum_s pi(s) prod_t p_{s_t}(y_t),
  pi a hidden-Markov prior that switches after unit t with probability
  alpha_t = 1 / (t + 1) (to one of the other M-1 strategies uniformly; the
  first strategy uniform among M). Computed by the forward algorithm in log
  space; never longer than any single sequence s plus -log2 pi(s).

**Self-switch** (App. E.2): within one prequential run, each block may be encoded
by the model after any epoch e = 0..E_s of its training (E_s epochs were run,
which Bob knows); the choice costs log2(E_s + 1) bits per block.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import codes, results, scales
from ..bits import LN2, total, uniform_bits
from ..results import CodeResult, ResultFileError, Stopwatch, provenance

CHAPTER = "switch"
MIXTURE = "switch"  # model name prefix of the mixture: "switch-<model>-...-uniform"
TRAINS = False  # the job runner's hook: these codes read the prequential runs' stored per-sample bits


def _check(unit_bits: np.ndarray) -> np.ndarray:
    a = np.asarray(unit_bits, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"unit_bits must have shape (strategies, units), got {a.shape}")
    if not np.all(np.isfinite(a)) or np.any(a < 0):
        raise ValueError("unit_bits must be finite, non-negative codelengths")
    return a


def switch_rate(t: int) -> float:
    """alpha_t: probability of switching after the t-th unit (t = 1, 2, ...)."""
    return 1.0 / (t + 1)


# ---------------------------------------------------------------- the mixture


def mixture_bits(unit_bits: np.ndarray) -> np.ndarray:
    """Per-unit codelengths of the switch mixture (forward algorithm, log space). Sum = total bits.

    With log weights log w_m (normalized, uniform at first), unit t costs -log2 sum_m w_m 2^(-bits[m, t]); the
    posterior then switches: w_m <- (1 - a) w_m + a (1 - w_m) / (M - 1), a = alpha_{t+1}. Computed with Python's
    scalar math (the platform's libm, as the coder's :class:`~mdl_utils.codes.bytes.SwitchWeights`), not NumPy's
    vector exp/log, whose SIMD kernels differ from one CPU to another in the last bit."""
    a = _check(unit_bits)
    m, t_units = a.shape
    log_w = [-math.log(m)] * m  # log posterior weights, normalized
    tiny = float(np.finfo(float).tiny)
    out = np.empty(t_units)
    for t, column in enumerate(a.T.tolist()):
        joint = [lw - b * LN2 for lw, b in zip(log_w, column)]
        top = max(joint)
        log_total = top + math.log(math.fsum(math.exp(j - top) for j in joint))
        out[t] = -log_total / LN2
        w = [math.exp(j - log_total) for j in joint]
        if m > 1:
            alpha = switch_rate(t + 1)
            w = [(1 - alpha) * v + alpha * (1 - v) / (m - 1) for v in w]
        log_w = [math.log(max(v, tiny)) for v in w]
    return out




# ------------------------------------------------------ the best sequence (DP)


def sequence_prior_bits(num_switches: int, num_units: int, num_strategies: int,
                        max_switches: int | None = None) -> float:
    """Bits to describe a switch sequence: k uniform on 0..kmax (kmax = T-1 unless capped),
    positions log2 C(T-1, k), first strategy log2 M, each next one log2 (M-1)."""
    k, t, m = num_switches, num_units, num_strategies
    if m == 1:
        return 0.0
    kmax = t - 1 if max_switches is None else min(max_switches, t - 1)
    if not 0 <= k <= kmax:
        raise ValueError(f"{k} switches is outside 0..{kmax}")
    positions = (math.lgamma(t) - math.lgamma(k + 1) - math.lgamma(t - k)) / LN2
    return math.log2(kmax + 1) + positions + math.log2(m) + k * math.log2(m - 1)


@dataclasses.dataclass
class SwitchSequence:
    """A switch sequence: ``segments`` = [(first unit, strategy)], with its data and description bits."""

    segments: list[tuple[int, int]]
    data_bits: float
    prior_bits: float

    @property
    def total_bits(self) -> float:
        return self.data_bits + self.prior_bits

    def per_unit(self, num_units: int) -> np.ndarray:
        """The strategy used at every unit."""
        seq = np.empty(num_units, dtype=int)
        bounds = [s for s, _ in self.segments[1:]] + [num_units]
        for (start, m), end in zip(self.segments, bounds):
            seq[start:end] = m
        return seq


def best_sequence(unit_bits: np.ndarray, max_switches: int | None = None) -> SwitchSequence:
    """The switch sequence minimizing data bits + sequence_prior_bits, by dynamic programming.

    f[k, m] = least data bits of units 0..t using k switches and ending in m;
    f_t[k, m] = bits[m, t] + min(f_{t-1}[k, m], min_{m' != m} f_{t-1}[k-1, m']).
    """
    a = _check(unit_bits)
    m, t_units = a.shape
    kmax = t_units - 1 if max_switches is None else min(int(max_switches), t_units - 1)
    if m == 1:
        kmax = 0
    f = np.full((kmax + 1, m), np.inf)
    f[0] = a[:, 0]
    back = np.zeros((t_units, kmax + 1, m), dtype=np.int32)  # previous strategy
    back[0] = -1
    for t in range(1, t_units):
        # best predecessor with a different strategy, for each k-1: top-2 trick
        order = np.argsort(f, axis=1, kind="stable")
        best1, best2 = order[:, 0], order[:, 1] if m > 1 else order[:, 0]
        other = np.where(np.arange(m)[None, :] == best1[:, None], best2[:, None], best1[:, None])  # (k, m)
        switch_cost = np.full((kmax + 1, m), np.inf)
        switch_from = np.zeros((kmax + 1, m), dtype=np.int32)
        if kmax >= 1:
            switch_cost[1:] = np.take_along_axis(f[:-1], other[:-1], axis=1)
            switch_from[1:] = other[:-1]
        stay = f
        use_switch = switch_cost < stay
        back[t] = np.where(use_switch, switch_from, np.arange(m)[None, :])
        f = np.where(use_switch, switch_cost, stay) + a[:, t][None, :]
    totals = [f[k].min() + sequence_prior_bits(k, t_units, m, kmax) for k in range(kmax + 1)]
    k = int(np.argmin(totals))
    cur = int(np.argmin(f[k]))
    data_bits = float(f[k, cur])
    seq = [cur]
    for t in range(t_units - 1, 0, -1):
        prev = int(back[t, k, cur])
        if prev != cur:
            k -= 1
        cur = prev
        seq.append(cur)
    seq.reverse()
    segments = [(t, s) for t, s in enumerate(seq) if t == 0 or seq[t - 1] != s]
    return SwitchSequence(segments, data_bits, sequence_prior_bits(len(segments) - 1, t_units, m, kmax))


# ---------------------------------------------------------------- self-switch


def self_switch(first_block_bits: float, epoch_bits: Sequence[Sequence[float]]) -> tuple[float, list[int], float]:
    """Self-switch codelength: the first block, then per block the best epoch plus log2(E_s + 1) bits.

    Returns (total bits, chosen epoch per block, bits spent on the choices).
    """
    if any(len(e) == 0 for e in epoch_bits):
        raise ValueError("every block needs its bits after each epoch (run the prequential code with record_epochs)")
    choices = [int(np.argmin(e)) for e in epoch_bits]
    choice_bits = total([math.log2(len(e)) for e in epoch_bits])
    return total([first_block_bits, *(e[c] for e, c in zip(epoch_bits, choices)), choice_bits]), choices, choice_bits


# ------------------------------------------------------------- block units


def block_units(per_sample: np.ndarray, timesteps: Sequence[int]) -> np.ndarray:
    """Sum per-sample bits into units: the first (uniform) block 0..t_1, then each block t_s..t_{s+1}."""
    edges = [0, *timesteps]
    if edges[-1] != len(per_sample):
        raise ValueError(f"timesteps end at {edges[-1]} but there are {len(per_sample)} per-sample codelengths")
    return np.array([total(per_sample[a:b]) for a, b in zip(edges[:-1], edges[1:])])


# ------------------------------------------------------------ the chapter


@dataclasses.dataclass(frozen=True)
class Settings:
    """Which stored prequential runs to switch between (``models`` per dataset; None: the prequential chapter's
    models at the same scale), always with the uniform code as one more strategy; the best sample-level
    sequence is searched with at most ``max_sample_switches`` switches (block-level: no cap)."""

    models: dict[str, tuple[str, ...]] | None = None
    max_sample_switches: int = 20


SCALES: dict = {}


settings = scales.settings_of(Settings, SCALES)


def code_of(model: str) -> str:
    return "switch" if model.split("-")[0] == MIXTURE else "self_switch"


def mixture_name(models: Sequence[str]) -> str:
    """The mixture's model name: switch-<model>-...-uniform."""
    return "-".join([MIXTURE, *models, "uniform"])


def prequential_models(dataset: str, scale: str) -> tuple[str, ...]:
    """The prequential runs to switch between: ``Settings.models``, else every run (cold and warm recipes) of the
    prequential chapter's models table at ``scale``."""
    table = settings(scale).models or codes.chapter("prequential").module.settings(scale).models
    return codes.models_for("prequential", dataset, table, scale)


def needs(dataset: str, model: str, scale: str) -> list[tuple[str, str, str]]:
    """The prequential runs a switch or self-switch code reads (the job runner's hook)."""
    names = [m for m in model.split("-")[1:] if m != "uniform"] if code_of(model) == "switch" else [model]
    return [("prequential", dataset, m) for m in names]


def networks(model: str, dataset: str, scale: str) -> list[str]:
    """The architectures of the prequential runs a switch or self-switch code reads (the registry's hook)."""
    return [n for _, _, m in needs(dataset, model, scale) for n in codes.networks("prequential", m, dataset, scale)]


def records_epochs(dataset: str, model: str, scale: str, root: str | Path | None = None) -> bool:
    """Whether the prequential run ``model`` records each block's bits after every evaluation, which its
    self-switch code needs: its stored result's records when it is stored (in ``root``), else its recipe's
    ``record_epochs`` (a run stored before its recipe recorded epochs has no self-switch until it is rerun)."""
    try:
        stored = results.load("prequential", dataset, model, scale, root=root)
    except results.MissingResultError:
        return codes.chapter("prequential").module.settings(scale).recipe(dataset, model, 2).record_epochs
    return any(len(e) for e in stored.curves.get("epoch_bits", []))


def runs(dataset: str, scale: str, models: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """The mixture over the prequential runs of ``dataset``, then the self-switch code of each of them that
    records its epochs."""
    names = list(models or prequential_models(dataset, scale))
    return [(dataset, mixture_name(names))] + [(dataset, m) for m in names if records_epochs(dataset, m, scale)]


def compute(dataset: str, model: str, scale: str, *, seed: int = 0, device: str = "auto",
            data_root: str | None = None, root: str | Path | None = None) -> CodeResult:
    """``switch-<a>-<b>-uniform``: the switch mixture over those prequential runs and the uniform code (the best
    block and sample sequences in its parts); any other ``model``: the self-switch code of its prequential run.
    Reads the prequential chapter's stored results and per-sample bits in the results store ``root`` (default
    results_root(); ``device``/``data_root`` are unused: nothing is trained here); a missing run is an error that
    names the command computing it."""
    if code_of(model) == "switch":
        names = [m for m in model.split("-")[1:] if m != "uniform"] or list(prequential_models(dataset, scale))
        runs_ = [load_prequential(dataset, m, scale, seed, root) for m in names]
        return mixture_result(runs_, [results.load_array("prequential", r, "bits", root) for r in runs_],
                              settings(scale), seed=seed)
    return self_switch_result(load_prequential(dataset, model, scale, seed, root))


def load_prequential(dataset: str, model: str, scale: str, seed: int = 0, root: str | Path | None = None
                     ) -> CodeResult:
    """The stored prequential run of ``model``. A missing one raises ResultFileError saying which chapter to run
    first, and how; an invalid one, the loader's ResultFileError naming the file and the field."""
    try:
        return results.load("prequential", dataset, model, scale, root, seed=seed)
    except results.MissingResultError:
        command = codes.rerun_command("prequential", scale, datasets=[dataset], models=[model],
                                         **({"seed": seed} if seed else {}))
        raise ResultFileError(f"the switch code needs the prequential run of {model} on {dataset} at "
                              f"scale={scale}, which is not stored; run the prequential chapter first: "
                              f"{command}") from None


def _unit_arrays(runs_: list[CodeResult], per_sample: list[np.ndarray]) -> tuple[list[int], np.ndarray, np.ndarray]:
    """(timesteps, per-sample bits, per-block bits) of the prequential runs plus the uniform code."""
    steps = runs_[0].params["timesteps"]
    for r in runs_[1:]:
        if r.params["timesteps"] != steps or r.params["order_seed"] != runs_[0].params["order_seed"]:
            raise ValueError(f"{r.model} and {runs_[0].model} were run with different timesteps or orders; "
                             f"a switch code needs one transmission order")
    n, k = runs_[0].n, runs_[0].K
    samples = np.vstack([*(p.astype(np.float64) for p in per_sample), np.full(n, math.log2(k))])
    return steps, samples, np.vstack([block_units(p, steps) for p in samples])


def mixture_result(runs_: list[CodeResult], per_sample: list[np.ndarray], s: Settings, *, seed: int = 0) -> CodeResult:
    """The switch mixture over ``runs_`` and the uniform code (per-sample updates), as a CodeResult; its parts
    also give the best block-level and sample-level switch sequences with their prior bits."""
    names = [r.model for r in runs_]
    labels, (n, k) = [*names, "uniform"], (runs_[0].n, runs_[0].K)
    steps, samples, blocks = _unit_arrays(runs_, per_sample)
    with Stopwatch() as sw:
        mix_samples, mix_blocks = mixture_bits(samples), mixture_bits(blocks)
        best, best_samples = best_sequence(blocks), best_sequence(samples, max_switches=s.max_sample_switches)
    seq = best.per_unit(blocks.shape[1])
    accuracies = [[1.0 / k, *r.curves["test_accuracy"]] for r in runs_] + [[1.0 / k] * blocks.shape[1]]
    block_mix = block_units(mix_samples, steps)
    return CodeResult(
        code="switch", dataset=runs_[0].dataset, model=mixture_name(names), scale=runs_[0].scale, n=n, K=k, seed=seed,
        codelength_bits=total(mix_samples), test_accuracy=accuracies[seq[-1]][-1],
        parts={"mixture_bits": total(mix_samples), "mixture_block_units_bits": total(mix_blocks),
               "best_sequence_bits": best.total_bits, "best_sequence_data_bits": best.data_bits,
               "best_sequence_prior_bits": best.prior_bits, "best_sample_sequence_bits": best_samples.total_bits,
               "best_sample_sequence_prior_bits": best_samples.prior_bits,
               **{f"prequential_{m}_bits": r.codelength_bits for m, r in zip(names, runs_)},
               "uniform_bits": uniform_bits(n, k)},
        curves={"t_end": steps, "bits": block_mix.tolist(),
                "bits_per_sample": (block_mix / np.diff([0, *steps])).tolist(),
                "test_accuracy": [accuracies[m][b] for b, m in enumerate(seq)],
                "best_sequence": [[int(start), labels[m]] for start, m in best.segments],
                "best_sample_sequence": [[int(start), labels[m]] for start, m in best_samples.segments]},
        params={**scales.as_params(s), "strategies": labels, "timesteps": steps, "switch_rate": "alpha_t = 1/(t+1)",
                "from_scale": runs_[0].scale},
        provenance=provenance(device="cpu", stopwatch=sw, data_source=runs_[0].provenance["data_source"],
                              prequential_commits=sorted({r.provenance.get("git_commit") or "" for r in runs_}),
                              numerics=inherited_numerics(runs_)),
        note=f"switch mixture over {', '.join(labels)} (per-sample updates); the last block's best model is "
             f"{labels[seq[-1]]}",
    )


def inherited_numerics(runs_: Sequence[CodeResult]) -> dict | None:
    """The numerics of a code computed from stored prequential bits: its runs' (None for runs from before portable
    numerics), or {"numerics": "mixed"} when they differ; never this process's, which computed no bit of them."""
    envs = [r.provenance.get("numerics") for r in runs_]
    return envs[0] if all(e == envs[0] for e in envs) else {"numerics": "mixed"}


def self_switch_result(r: CodeResult) -> CodeResult:
    """The self-switch code of one prequential run: per block, the epoch whose model encodes it best."""
    steps, first = r.params["timesteps"], r.parts["first_block_bits"]
    with Stopwatch() as sw:
        bits, choices, choice_bits = self_switch(first, r.curves["epoch_bits"])
    chosen = [first] + [e[c] for e, c in zip(r.curves["epoch_bits"], choices)]
    return CodeResult(
        code="self_switch", dataset=r.dataset, model=r.model, scale=r.scale, n=r.n, K=r.K, seed=r.seed,
        codelength_bits=bits, test_accuracy=r.test_accuracy,
        parts={"choice_bits": choice_bits, "data_bits": bits - choice_bits, "prequential_bits": r.codelength_bits},
        curves={"t_end": steps, "bits": chosen, "bits_per_sample": (np.array(chosen) / np.diff([0, *steps])).tolist(),
                "chosen_epoch": choices, "early_stopping_epoch": r.curves["best_epoch"],
                "epochs_run": r.curves["epochs_run"]},
        params={"timesteps": steps, "from_scale": r.scale},
        provenance=provenance(device="cpu", stopwatch=sw, data_source=r.provenance["data_source"],
                              prequential_commit=r.provenance.get("git_commit"), numerics=inherited_numerics([r])),
        note="per block, the epoch (0 = untrained) whose model encodes it best; log2(epochs run + 1) bits each",
    )
