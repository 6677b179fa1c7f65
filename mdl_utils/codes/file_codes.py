"""The codes of the labels files (chapter 9), one object each: what Alice and Bob compute block by block
(:mod:`mdl_utils.codes.files` drives them against the range coder and checks the file before the first label).

Each code: ``prepare(dataset)`` / ``load(model_bytes, x)`` (what the file carries besides the labels),
``start(x, num_threads, parallel)`` / ``close()``, ``blocks()``, and ``symbols(x, y_prefix, start, end,
y_block)``: a generator of the block's coded symbols, from the labels before ``start`` only, that yields (float32
probabilities, Alice's symbols or None), receives the symbols coded and returns (computed bits, labels, label
probabilities). Codes: ``uniform`` (Sec. 2.3), ``prequential`` (Algorithm 2, calibration hedged:
:mod:`mdl_utils.codes.calibration`), ``two_part`` (Sec. 3.1), ``switch`` (App. E.1, label by label) and
``self_switch`` (App. E.2).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np
import torch

from .. import coder, numerics, scales
from ..bits import per_sample_bits, total, uniform_bits
from ..coder import CodingError
from ..models import build
from ..training import predict_logits
from . import calibration, prequential, switch, two_part
from .chains import Chains


CODES = coder.CODE_IDS  # uniform, prequential, two_part, switch, self_switch
HEDGED_SINCE = 3  # the code version from which calibration is hedged (mdl_utils.codes.calibration)


class UniformCode:
    """p(y) = 1/K for every label (Sec. 2.3). The base of every code: one block of per-sample distributions."""

    name = "uniform"

    def __init__(self, n: int, num_classes: int, settings: dict | None = None, *, scale: str | None = None,
                 names: Sequence[str] | None = None):
        self.n, self.K, self.settings, self.scale = n, num_classes, None, scale
        self.device, self.checks = "cpu", 0

    @property
    def model_arg(self) -> str | None:
        """What Bob names with --model to rebuild this code (None: nothing)."""
        return None

    def prepare(self, dataset, device: str = "cpu") -> bytes:
        return b""

    def load(self, model_bytes: bytes, x: torch.Tensor, device: str = "cpu") -> None:
        pass

    def start(self, x: torch.Tensor, num_threads: int = 1, parallel: bool = False, device: str = "cpu") -> None:
        """Before the first block, on both sides (a fresh state: the same object may encode, then decode)."""
        self.device, self.checks = device, 0

    def close(self) -> None:
        """After the last block (or an error): stop worker processes."""

    def blocks(self) -> list[tuple[int, int]]:
        return [(0, self.n)]

    def logits(self, x, y_prefix, start: int, end: int) -> torch.Tensor:
        return torch.zeros(end - start, self.K)

    def bits(self, logits: torch.Tensor, y: torch.Tensor, start: int) -> np.ndarray:
        """Each label's computed codelength (float64): log2 K here."""
        return np.full(len(y), math.log2(self.K))

    def checked(self, start: int) -> bool:
        """Whether the block from label ``start`` on gets a check symbol (its probabilities come from a model)."""
        return False

    def check(self, start: int, end: int, *arrays):
        """The block's check symbol (coder.check_value of the arrays its probabilities come from): Alice encodes
        hers; Bob decodes it and compares it with his own before decoding any label of the block."""
        mine = coder.check_value(*arrays)
        (sent,) = yield coder.uniform_probabilities(1, 2 ** coder.CHECK_BITS), np.array([mine])
        self.checks += 1
        if int(sent) != mine:
            raise CodingError(f"per-block check failed before label {start + 1:,} (block {start + 1:,}..{end:,}): "
                              "this decoder's models predict other probabilities than the encoder's, although the "
                              "header's versions, numerics and thread count agree; decode on the encoder's kind of "
                              "machine, or ask for a file written with portable numerics (the default)")

    def symbols(self, x, y_prefix: torch.Tensor, start: int, end: int, y_block: np.ndarray | None = None):
        """One chunk: the block's labels under softmax(logits) (float64 -> float32), after its check symbol when
        it has one. Returns (each coded label's bits, labels, probabilities)."""
        logits = self.logits(x, y_prefix, start, end)
        probs = coder.probabilities(logits)
        if self.checked(start):
            yield from self.check(start, end, probs)
        labels = yield probs, y_block
        return self.bits(logits, torch.from_numpy(labels), start), labels, probs

    def reference_bits(self) -> float | None:
        """Alice, after encoding: the codelength by the formula of the code's chapter on this run's numbers."""
        return None


def _recipe(settings: dict, n: int) -> prequential.Recipe:
    """A Recipe from its JSON form (as in a result's params), timesteps checked against n."""
    d = dict(settings)
    d.update(timesteps=tuple(prequential.check_timesteps(d["timesteps"], n)),
             temperature_range=tuple(d["temperature_range"]))
    return prequential.Recipe(**d)


class ChainCode(UniformCode):
    """A code driven by prequential chains (:class:`Chains`, one per recipe of ``self.recipes``): blocks at the
    recipes' timesteps; the first block uniform."""

    per_epoch = False  # the chains return each epoch's logits (self-switch)

    def __init__(self, n: int, num_classes: int, recipes: Sequence[dict], *, scale: str | None = None,
                 names: Sequence[str] | None = None):
        super().__init__(n, num_classes, scale=scale)
        self.recipes = [_recipe(s, n) for s in recipes]
        if len({r.timesteps for r in self.recipes}) != 1:
            raise ValueError("the prequential chains of one code need the same timesteps (one transmission order)")
        self.names = list(names) if names else [r.model for r in self.recipes]  # run names, e.g. mlp_warm
        self.chains = None
        self.code_version = numerics.CODE_VERSION  # a decoder sets the file's (2: no hedged calibration)

    @property
    def hedged(self) -> bool:
        """Whether blocks are sent under the hedged calibration (code version 3 on), else with the temperature
        alone."""
        return self.code_version >= HEDGED_SINCE

    @property
    def recipe(self) -> prequential.Recipe:
        return self.recipes[0]

    @property
    def model_arg(self) -> str:
        return "-".join(self.names)

    def start(self, x, num_threads: int = 1, parallel: bool = False, device: str = "cpu") -> None:
        super().start(x, num_threads, parallel, device)
        self.chains = Chains(x, self.K, self.recipes, per_epoch=self.per_epoch, num_threads=num_threads,
                             parallel=parallel, device=device)

    def close(self) -> None:
        if self.chains is not None:
            self.chains.close()

    def blocks(self) -> list[tuple[int, int]]:
        steps = self.recipe.timesteps
        return [(0, steps[0]), *zip(steps[:-1], steps[1:])]

    def checked(self, start: int) -> bool:
        """Every block after the first, but those the recipes send uniformly (``uniform_below``)."""
        return start > 0 and start >= min(r.uniform_below for r in self.recipes)


class PrequentialCode(ChainCode):
    """Algorithm 2: the first block uniform, then each block with the model trained on the labels before it
    (the chain of any prequential Recipe: :class:`Chain`)."""

    name = "prequential"

    def __init__(self, n: int, num_classes: int, settings: dict, *, scale: str | None = None,
                 names: Sequence[str] | None = None):
        super().__init__(n, num_classes, [settings], scale=scale, names=names)
        self.settings = scales.as_params(self.recipe)

    def start(self, x, num_threads: int = 1, parallel: bool = False, device: str = "cpu") -> None:
        super().start(x, num_threads, parallel, device)
        self.weight = calibration.PRIOR  # the calibrated prediction's weight (hedged calibration)

    def symbols(self, x, y_prefix, start: int, end: int, y_block: np.ndarray | None = None):
        """The first block uniform; then each block's check symbol and its labels under the hedged calibration
        (:mod:`mdl_utils.codes.calibration`): label by label where the block has a temperature (Bob needs y_i
        before he can weigh label i + 1), in one chunk where it has none."""
        if start == 0:
            return (yield from super().symbols(x, y_prefix, start, end, y_block))
        block = self.chain_block(y_prefix, start, end)
        if self.checked(start):
            yield from self.check(start, end, *block.checked_arrays())
        labels, probs, self.weight = yield from block.labels(self.weight, y_block)
        return block.bits(labels), labels, probs

    def chain_block(self, y_prefix, start: int, end: int) -> "ChainBlock":
        """The chain's block of labels start+1..end, from the labels before it."""
        return ChainBlock(*self.chains.next_blocks(y_prefix, end)[0], hedged=self.hedged)


class ChainBlock:
    """One block of a prequential chain in a file: the float64 softmax of its raw logits z and of z / T (the coder's
    one rule, coder.softmax64), and its labels sent under the hedged calibration from weight w on (``hedged``
    False: a file of code version 2, sent with softmax(z / T) alone)."""

    def __init__(self, logits: np.ndarray, temperature: float, hedged: bool = True):
        z = torch.from_numpy(logits)
        self.legacy = not hedged
        self.p_raw = coder.softmax64(z)
        self.p_temperature = coder.softmax64(z / temperature) if temperature != 1.0 else self.p_raw
        if self.legacy:  # code version 2: the temperature alone
            self.p_raw = self.p_temperature
        self.hedged = hedged and temperature != 1.0

    def checked_arrays(self) -> tuple[np.ndarray, ...]:
        """What the block's check symbol covers (code version 2: the float32 probabilities it sent)."""
        return (self.p_raw.astype(np.float32),) if self.legacy else (self.p_temperature, self.p_raw)

    def distribution(self, w: float, i: int) -> np.ndarray:
        """Label i's distribution q_i (float64) at weight w."""
        return calibration.mix(w, self.p_temperature[i], self.p_raw[i]) if self.hedged else self.p_raw[i]

    def label_probabilities(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = np.arange(len(labels))
        return self.p_temperature[rows, labels], self.p_raw[rows, labels]

    def update(self, w: float, i: int, label: int) -> float:
        return calibration.update(w, self.p_temperature[i, label], self.p_raw[i, label]) if self.hedged else w

    def labels(self, w: float, y_block: np.ndarray | None):
        """Generator of the block's chunks: one with every label where the block has no temperature, else one per
        label (q_i at the weight after labels < i). Returns (labels, float32 probabilities, the weight after)."""
        self.w_start = w
        if not self.hedged:
            probs = self.p_raw.astype(np.float32)
            labels = yield probs, y_block
            return labels, probs, w
        m = len(self.p_raw)
        labels, probs = np.empty(m, np.int64), np.empty(self.p_raw.shape, np.float32)
        for i in range(m):
            probs[i] = self.distribution(w, i)
            (labels[i],) = yield probs[i:i + 1], None if y_block is None else y_block[i:i + 1]
            w = self.update(w, i, labels[i])
        return labels, probs, w

    def bits(self, labels: np.ndarray) -> np.ndarray:
        """Each label's computed bits, as the chapter computes them (calibration.hedged_bits)."""
        p_t, p_raw = self.label_probabilities(labels)
        return calibration.hedged_bits(p_t, p_raw, np.full(len(labels), self.hedged), self.w_start)[0]


class SelfSwitchCode(PrequentialCode):
    """App. E.2: per block, the epoch e in 0..E_s (E_s: epochs the block's training ran, which Bob finds by
    retraining) as a uniform symbol, log2(E_s + 1) bits, then the labels with the calibrated model after epoch
    e. Alice picks the e of fewest bits (switch.self_switch)."""

    name = "self_switch"
    per_epoch = True

    def start(self, x, num_threads: int = 1, parallel: bool = False, device: str = "cpu") -> None:
        super().start(x, num_threads, parallel, device)
        self.epoch_bits = []

    def symbols(self, x, y_prefix, start: int, end: int, y_block: np.ndarray | None = None):
        """Per block after the first: the check symbol (over every epoch's probabilities), the epoch (uniform over
        E_s + 1), then the labels."""
        if start == 0:
            return (yield from super().symbols(x, y_prefix, start, end, y_block))
        candidates = [torch.from_numpy(z) for z in self.chains.next_blocks(y_prefix, end)[0]]
        if self.checked(start):
            yield from self.check(start, end, *map(coder.probabilities, candidates))
        best = None
        if y_block is not None:
            self.epoch_bits.append([total(per_sample_bits(z, torch.from_numpy(y_block))) for z in candidates])
            best = np.array([int(np.argmin(self.epoch_bits[-1]))])
        (epoch,) = yield coder.uniform_probabilities(1, len(candidates)), best
        probs = coder.probabilities(candidates[epoch])
        labels = yield probs, y_block
        bits = per_sample_bits(candidates[epoch], torch.from_numpy(labels))
        return np.append(bits, math.log2(len(candidates))), labels, probs

    def reference_bits(self) -> float:
        return switch.self_switch(uniform_bits(self.recipe.timesteps[0], self.K), self.epoch_bits)[0]


class SwitchWeights:
    """The switch mixture's weights over M strategies (App. E.1), as switch.mixture_bits updates them (here in
    linear space, float64): uniform 1/M at first; after label t = 1, 2, ... the posterior
    w_m <- w_m p_m(y_t) / sum_m' w_m' p_m'(y_t), then the switch w_m <- (1 - a_t) w_m + a_t (1 - w_m) / (M - 1),
    a_t = 1/(t + 1). The uniform strategy keeps every weight >= a_t / (M - 1) after a switch: no underflow."""

    def __init__(self, num_strategies: int):
        self.w, self.t = np.full(num_strategies, 1.0 / num_strategies), 0

    def update(self, p_label: np.ndarray) -> None:
        """After one label, with p_label[m] = p_m(y_t) (float64)."""
        joint = self.w * p_label
        w = joint / joint.sum()
        self.t += 1
        if len(w) > 1:
            alpha = switch.switch_rate(self.t)
            w = (1 - alpha) * w + alpha * (1 - w) / (len(w) - 1)
        self.w = w


class SwitchCode(ChainCode):
    """App. E.1: each label under the mixture q_t = sum_m w_m p_m of the strategies' full predictive
    distributions (the prequential chains of the models, then the uniform code), the weights updated after every
    label (:class:`SwitchWeights`); Bob must decode y_t before he can update them, so blocks go label by label."""

    name = "switch"

    def __init__(self, n: int, num_classes: int, settings: dict, *, scale: str | None = None,
                 names: Sequence[str] | None = None):
        super().__init__(n, num_classes, settings["strategies"], scale=scale, names=names)
        self.settings = {"strategies": [scales.as_params(r) for r in self.recipes], "uniform": True,
                         "switch_rate": "1/(t+1)", "mixture": "float64, per label"}

    def start(self, x, num_threads: int = 1, parallel: bool = False, device: str = "cpu") -> None:
        super().start(x, num_threads, parallel, device)
        self.weights, self.strategy_bits = SwitchWeights(len(self.recipes) + 1), []
        self.calibration_weights = [calibration.PRIOR] * len(self.recipes)  # each chain's hedge

    def chain_blocks(self, y_prefix, start: int, end: int) -> list[ChainBlock]:
        """Each strategy's block: its chain's (uniform before the chains' first block), then the uniform code."""
        uniform = (np.zeros((end - start, self.K), np.float32), 1.0)
        chains = self.chains.next_blocks(y_prefix, end) if start else [uniform] * len(self.recipes)
        return [ChainBlock(*c, hedged=self.hedged) for c in chains] + [ChainBlock(*uniform)]

    def checked_arrays(self, blocks: list[ChainBlock]) -> tuple[np.ndarray, ...]:
        """What the block's check symbol covers (code version 2: the strategies' distributions, (m, M, K))."""
        if not self.hedged:
            return (np.ascontiguousarray(np.stack([b.p_raw for b in blocks], axis=1)),)
        return tuple(p for b in blocks for p in (b.p_temperature, b.p_raw))

    def symbols(self, x, y_prefix, start: int, end: int, y_block: np.ndarray | None = None):
        """The block's check symbol (over the strategies' distributions), then one chunk per label: the mixture
        q_t of the strategies' (hedged) distributions (float64, cast once), then the updates with y_t: each
        chain's calibration weight, then the switch weights."""
        blocks = self.chain_blocks(y_prefix, start, end)
        if self.checked(start):
            yield from self.check(start, end, *self.checked_arrays(blocks))
        hedge = self.calibration_weights + [calibration.PRIOR]
        labels, q32, bits = np.empty(end - start, np.int64), np.empty((end - start, self.K), np.float32), []
        chosen = np.empty((len(blocks), end - start))
        for i in range(end - start):
            probs = np.stack([b.distribution(w, i) for b, w in zip(blocks, hedge)])
            q64, q32[i] = coder.mixture_probabilities(self.weights.w, probs)
            (labels[i],) = yield q32[i:i + 1], None if y_block is None else y_block[i:i + 1]
            bits.append(-math.log2(q64[labels[i]]))
            chosen[:, i] = probs[:, labels[i]]
            hedge = [b.update(w, i, labels[i]) for b, w in zip(blocks, hedge)]
            self.weights.update(chosen[:, i])
        self.calibration_weights = hedge[:-1]
        if y_block is not None:
            self.strategy_bits.append((-torch.log2(torch.from_numpy(chosen))).numpy())  # ATen's log2: portable
        return np.array(bits), labels, q32

    def reference_bits(self) -> float:
        return total(switch.mixture_bits(np.hstack(self.strategy_bits)))


class TwoPartCode(UniformCode):
    """Sec. 3.1: the float32 weights travel in the file, then every label with that model."""

    name = "two_part"

    def __init__(self, n: int, num_classes: int, settings: dict, *, scale: str | None = None,
                 names: Sequence[str] | None = None):
        super().__init__(n, num_classes, scale=scale)
        self.settings, self.net = dict(settings), None

    @property
    def model_arg(self) -> str:
        return self.settings["model"]

    def _model(self, x) -> torch.nn.Module:
        return build(self.settings["model"], tuple(x.shape[1:]), self.K, seed=self.settings["seed"])

    def prepare(self, dataset, device: str = "cpu") -> bytes:
        s = self.settings
        fields = {f.name for f in dataclasses.fields(two_part.Settings)}
        chapter = dataclasses.replace(two_part.Settings(), **{k: v for k, v in s.items() if k in fields})
        net, _ = two_part.train_model(dataset, s["model"], chapter, seed=s["seed"], device=device, progress=False)
        model_bytes = two_part.serialize_float32(net)
        self.load(model_bytes, dataset.x, device)  # Alice codes with the weights as Bob reads them back
        return model_bytes

    def load(self, model_bytes: bytes, x: torch.Tensor, device: str = "cpu") -> None:
        try:
            self.net = two_part.deserialize_float32(model_bytes, self._model(x))
        except ValueError as e:
            raise CodingError(f"model section does not fit {self.settings['model']}: {e}") from None

    def logits(self, x, y_prefix, start: int, end: int) -> torch.Tensor:
        return predict_logits(self.net, x[start:end], self.device)

    def bits(self, logits: torch.Tensor, y: torch.Tensor, start: int) -> np.ndarray:
        return per_sample_bits(logits, y)

    def checked(self, start: int) -> bool:
        return True


CODE_CLASSES = {c.name: c for c in (UniformCode, PrequentialCode, TwoPartCode, SwitchCode, SelfSwitchCode)}
