"""Chapter 9: from bounds to bytes. The book's codes as actual files (the coder is :mod:`mdl_utils.coder`).

Alice writes the training labels into a file with a range coder under the
per-sample distributions of a code; Bob, who has the inputs x and the file,
recovers every label. Each code is one object; one loop (:func:`_run`) drives
every code block by block, encoding on Alice's side and decoding on Bob's:

* ``prepare(dataset)`` (Alice) / ``load(model_bytes, x)`` (Bob): what the file carries besides the labels
  (two_part: the float32 weights);
* ``start(x, num_threads, parallel)`` / ``close()``: before the first block and after the last (the
  prequential chains, :class:`Chains`);
* ``blocks()``: the stretches [start, end) of labels coded together;
* ``symbols(x, y_prefix, start, end, y_block)``: a generator of the block's coded symbols, from the labels
  before ``start`` only: it yields (float32 probabilities, Alice's symbols or None) and receives the symbols
  coded; it returns (computed bits, labels, label probabilities). Block codes derive it from
  ``logits(x, y_prefix, start, end)`` and ``bits(logits, y, start)``.

Codes: ``uniform`` (p = 1/K, Sec. 2.3), ``prequential`` (Sec. 3.4, Algorithm 2),
``two_part`` (Sec. 3.1), ``switch`` (the switch mixture over prequential chains
and the uniform code, App. E.1, label by label) and ``self_switch`` (per block,
the epoch e in 0..E_s, sent uniformly, then the labels with the model after
epoch e, App. E.2), with the settings of their chapters at a scale.
Determinism: Bob's models equal Alice's bit for bit with the same torch build,
code version and thread count, under portable numerics on any x86-64 CPU with
AVX2 (:mod:`mdl_utils.numerics`); with native numerics (``--fast-numerics``) on
the encoder's kind of CPU only; on CUDA on the same GPU and CUDA/cuDNN versions
only. The header's environment field makes Bob check all of it before he decodes
anything (:func:`check_environment` names the difference), a check symbol per
block stops him at the first block whose probabilities differ from Alice's
(:data:`mdl_utils.coder.CHECK_BITS`), and a CRC-32 of the labels is checked at
the end.
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from importlib.metadata import version
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

from .. import coder, codes, data, numerics, scales
from ..bits import per_sample_bits, total, uniform_bits
from ..checkpoint import digest
from ..coder import CodingError
from ..models import ARCHITECTURES, build
from ..results import CodeResult, Stopwatch, provenance
from ..training import predict_logits, torch_threads
from . import prequential, switch, two_part

CHAPTER = "bytes"
CODES = coder.CODE_IDS  # uniform, prequential, two_part, switch, self_switch
QUANTIZATION = "softmax (mixture) float64 -> float32, constriction Categorical(perfect=False), 24-bit"


# ---------------------------------------------------------- prequential chains


def _numpy(logits):
    """A chain's output (a tensor, or a list of them per epoch) as float32 numpy arrays (what workers return)."""
    return [z.numpy() for z in logits] if isinstance(logits, list) else logits.numpy()


_WORKER: dict = {}  # the chain of a worker process


def _worker_start(x: torch.Tensor, num_classes: int, recipe, num_threads: int, device: str) -> None:
    """A worker process's initializer: the same torch thread count and numerics as the main process (its
    environment: mdl_utils.numerics), and its chain."""
    torch.set_num_threads(num_threads)
    _WORKER["chain"] = prequential.Chain(x, num_classes, recipe, device)


def _worker_next_block(y_prefix: np.ndarray, t_next: int, per_epoch: bool):
    """A worker's task: its chain's next block from the labels decoded so far."""
    return _numpy(_WORKER["chain"].next_block(torch.from_numpy(y_prefix), t_next, per_epoch=per_epoch))


def _worker_context():
    """Fresh worker processes that share nothing with this one but the arguments: "forkserver" (a clean server
    process imports this module once, then forks each worker: ~0 s per pool after the first), else "spawn"."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


class Chains:
    """The prequential chains (prequential.Chain: cold or warm recipes, any Recipe) of several recipes, advanced
    block by block, in the order of the timesteps: in this process, or (``parallel``, more than one chain) one
    worker process per chain (:func:`_worker_context`), which receives the inputs once (shared memory), runs the
    same torch thread count, keeps its chain's state between blocks and returns each block's logits: exactly what
    this process would compute. ``per_epoch``: each block's logits after every epoch (self-switch)."""

    def __init__(self, x: torch.Tensor, num_classes: int, recipes: Sequence[prequential.Recipe], *,
                 per_epoch: bool = False, num_threads: int = 1, parallel: bool = False, device: str = "cpu"):
        self.per_epoch, self.chains, self.pools = per_epoch, [], []
        if parallel and len(recipes) > 1:
            self.pools = [ProcessPoolExecutor(1, mp_context=_worker_context(), initializer=_worker_start,
                                              initargs=(x, num_classes, r, num_threads, device)) for r in recipes]
        else:
            self.chains = [prequential.Chain(x, num_classes, r, device) for r in recipes]

    def next_blocks(self, y_prefix: torch.Tensor, t_next: int) -> list:
        """Each chain's next block (float32 numpy logits, or per-epoch lists of them), in the order of the recipes."""
        if not self.pools:
            return [_numpy(c.next_block(y_prefix, t_next, per_epoch=self.per_epoch)) for c in self.chains]
        prefix = np.ascontiguousarray(torch.as_tensor(y_prefix).numpy())
        futures = [p.submit(_worker_next_block, prefix, t_next, self.per_epoch) for p in self.pools]
        return [f.result() for f in futures]

    def close(self) -> None:
        for p in self.pools:
            p.shutdown(cancel_futures=True)
        self.pools = []


# ---------------------------------------------------------------- the codes


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

    def logits(self, x, y_prefix, start: int, end: int) -> torch.Tensor:
        if start == 0:
            return super().logits(x, y_prefix, start, end)
        return torch.from_numpy(self.chains.next_blocks(y_prefix, end)[0])

    def bits(self, logits: torch.Tensor, y: torch.Tensor, start: int) -> np.ndarray:
        return super().bits(logits, y, start) if start == 0 else per_sample_bits(logits, y)


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
        bits = self.bits(candidates[epoch], torch.from_numpy(labels), start)
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

    def strategy_probs(self, y_prefix, start: int, end: int) -> np.ndarray:
        """(end - start, M, K) float64: each strategy's predictive distribution of each label of the block."""
        uniform = np.full((end - start, self.K), 1.0 / self.K)
        chains = [coder.softmax64(torch.from_numpy(z)) for z in self.chains.next_blocks(y_prefix, end)] if start else \
            [uniform] * len(self.recipes)
        return np.ascontiguousarray(np.stack([*chains, uniform], axis=1))

    def symbols(self, x, y_prefix, start: int, end: int, y_block: np.ndarray | None = None):
        """The block's check symbol (over the strategies' distributions), then one chunk per label: the mixture
        q_t (float64, cast once), then the weights' update with y_t."""
        probs = self.strategy_probs(y_prefix, start, end)
        if self.checked(start):
            yield from self.check(start, end, probs)
        labels, q32, bits = np.empty(end - start, np.int64), np.empty((end - start, self.K), np.float32), []
        for i in range(end - start):
            q64, q32[i] = coder.mixture_probabilities(self.weights.w, probs[i])
            (labels[i],) = yield q32[i:i + 1], None if y_block is None else y_block[i:i + 1]
            bits.append(-math.log2(q64[labels[i]]))
            self.weights.update(probs[i, :, labels[i]])
        if y_block is not None:
            chosen = torch.from_numpy(probs[np.arange(len(labels)), :, labels].T.copy())
            self.strategy_bits.append((-torch.log2(chosen)).numpy())  # ATen's log2: portable, unlike NumPy's
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


def switch_models(network: str) -> list[str]:
    """The chained models of a mixture name: "switch-mlp-small_cnn-uniform" or "mlp-small_cnn" -> [mlp, small_cnn]."""
    return [m for m in network.split("-") if m not in (switch.MIXTURE, "uniform")]


def prequential_recipe(dataset: str, model: str, n: int, scale: str, seed: int = 0) -> prequential.Recipe:
    """The prequential chapter's recipe of ``model`` at ``scale``, without the per-epoch records."""
    return dataclasses.replace(prequential.settings(scale).recipe(dataset, model, n, seed), record_epochs=False)


def code_for(code: str, dataset: str, n: int, num_classes: int, network: str | None, scale: str, seed: int = 0):
    """The code object of ``code`` at ``scale`` (the prequential/two_part chapters' settings); ``network``: the
    model, or the mixture's models ("mlp-small_cnn" or "switch-mlp-small_cnn-uniform")."""
    if code not in CODE_CLASSES:
        raise ValueError(f"unknown code {code!r}; choose one of {', '.join(CODES)}")
    if code == "uniform":
        return UniformCode(n, num_classes, scale=scale)
    if not network:
        raise ValueError(f"the {code} code needs a model (--model), e.g. " + ("mlp-small_cnn" if code == "switch"
                                                                              else "mlp"))
    if code == "two_part":
        s = two_part.settings(scale)
        return TwoPartCode(n, num_classes, {"model": network, "seed": seed, "epochs": s.epochs, "lr": s.lr,
                                            "batch_size": s.batch_size, "patience": s.patience,
                                            "val_fraction": s.val_fraction}, scale=scale)
    names = switch_models(network)  # runs of the prequential chapter: architectures or recipe names (mlp_warm)
    recipes = [scales.as_params(prequential_recipe(dataset, m, n, scale, seed)) for m in names]
    if code == "switch":
        return SwitchCode(n, num_classes, {"strategies": recipes}, scale=scale, names=names)
    if len(recipes) != 1:
        raise ValueError(f"the {code} code takes one model, got {network!r}")
    return CODE_CLASSES[code](n, num_classes, recipes[0], scale=scale, names=names)


def code_from_description(description: dict):
    """Bob's code object from a self-describing file's JSON."""
    inputs, model = description["inputs"], description.get("model")
    return CODE_CLASSES[description["code"]](inputs["n"], inputs["K"], description["settings"],
                                             scale=description["scale"], names=model.split("-") if model else None)


def bob_code(header: coder.Header, dataset, model: str | None):
    """The code Bob rebuilds: from the self-describing section, else from the header's code, scale and seed and
    the ``model`` he names as Alice did."""
    if header.description is not None:
        return code_from_description(header.description)
    if header.scale is None:
        raise CodingError("the file was written with a custom recipe (no named scale) and no description; decode "
                          "with Alice's code object, or ask Alice for a self-describing file (--describe)")
    if model is None and header.code != "uniform":
        example = "mlp-small_cnn" if header.code == "switch" else "mlp"
        raise CodingError(f"the file holds a {header.code} code at scale={header.scale}: name its model as Alice "
                          f"did, e.g. --model {example}")
    try:
        return code_for(header.code, dataset.name, header.n, dataset.K, model, header.scale, header.seed)
    except ValueError as e:
        raise CodingError(str(e)) from None


# ------------------------------------------------------------ the header


def environment(num_threads: int, device: str = "cpu", facts: dict | None = None) -> dict:
    """What Bob's software and machine must share with Alice's for bit-identical models (hashed into the header):
    torch and constriction versions, the code version, thread count, format and quantization, and the numerics of
    ``device`` (``facts``, default numerics.environment: portable, or native on this CPU, or this GPU)."""
    return {"torch": torch.__version__, "constriction": version("constriction"), "code_version": numerics.CODE_VERSION,
            "num_threads": int(num_threads), "format": coder.FORMAT_VERSION, "quantization": QUANTIZATION,
            **(facts or numerics.environment(device))}


def inputs_description(dataset) -> dict:
    """The inputs Bob must have (hashed into the header): the dataset (a built-in's name; for an image folder its
    class names, not its path: a copy, another spelling of the path or a symlink holds the same inputs), split,
    size, order, K, SHA-256 of x."""
    folder = dataset.name not in coder.DATASET_IDS
    return {"name": "image folder" if folder else dataset.name, **({"classes": list(dataset.classes)} if folder
                                                                   else {}),
            "split": dataset.split, "n": dataset.n, "K": dataset.K, "order_seed": dataset.seed,
            "inputs_sha256": digest(dataset.x)}


def recipe_description(code) -> dict:
    """The agreed settings of a code (hashed into the header): its name and its settings/recipes as JSON."""
    return {"code": code.name, "settings": code.settings}


def full_description(dataset, code, num_threads: int, device: str = "cpu") -> dict:
    """The self-describing section: recipe, scale, model (run) names, environment and inputs."""
    return {**recipe_description(code), "scale": code.scale, "model": code.model_arg,
            "environment": environment(num_threads, device),
            "inputs": {**inputs_description(dataset),
                       **({"path": dataset.name} if dataset.name not in coder.DATASET_IDS else {})}}


def make_header(dataset, code, num_threads: int, labels: np.ndarray, describe: bool = False,
                device: str = "cpu") -> coder.Header:
    """Alice's header: code, scale, dataset, n, seed, the recipe hash, the environment field, the inputs hash, the
    labels' CRC (and the description)."""
    d = full_description(dataset, code, num_threads, device)
    return coder.Header(code.name, code.scale, dataset.name if dataset.name in coder.DATASET_IDS else None,
                        dataset.n, dataset.seed, coder.short_hash(recipe_description(code), coder.HASH_BYTES["recipe"]),
                        coder.environment_field(d["environment"]),
                        coder.short_hash(inputs_description(dataset), coder.HASH_BYTES["inputs"]),
                        coder.labels_crc(labels),
                        d if describe else None)


def _differences(want: dict | None, have: dict) -> str:
    """"key: <file's> in the file, <ours> here" for each key that differs (empty without a description)."""
    if not want:
        return ""
    keys = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
    return "; ".join(f"{k}: {want.get(k)!r} in the file, {have.get(k)!r} here" for k in keys)


def check_inputs(header: coder.Header, dataset) -> None:
    """Refuse inputs other than Alice's (dataset, n, order seed, then the inputs hash) before decoding."""
    if header.dataset is not None and dataset.name != header.dataset:
        raise CodingError(f"wrong dataset: the file holds labels of {header.dataset!r}, not {dataset.name!r}; "
                          f"decode with --dataset {header.dataset}")
    for key, want, have in (("n", header.n, dataset.n), ("order_seed", header.seed, dataset.seed)):
        if want != have:
            raise CodingError(f"wrong inputs: the file was encoded with {key}={want}, the inputs given have "
                              f"{key}={have}; load the dataset as the header says")
    mine = inputs_description(dataset)
    if coder.short_hash(mine, coder.HASH_BYTES["inputs"]) != header.inputs_hash:
        theirs = header.description and {k: v for k, v in header.description["inputs"].items() if k in mine}
        which = _differences(theirs, mine)
        raise CodingError("wrong inputs: the hash of the inputs (dataset or class names, split, K, SHA-256 of the "
                          f"images) differs from the encoder's{f' ({which})' if which else ''}; use the same dataset "
                          "files (--data-root) and split")


def _matching_model(header: coder.Header, dataset) -> str | None:
    """The model (run) name whose recipe at the header's scale has the file's recipe hash (single-model codes)."""
    if header.code in ("uniform", "switch") or header.scale is None:
        return None
    for model in [*ARCHITECTURES, *prequential.settings(header.scale).recipes]:
        code = code_for(header.code, dataset.name, header.n, dataset.K, model, header.scale, header.seed)
        if coder.short_hash(recipe_description(code), coder.HASH_BYTES["recipe"]) == header.recipe_hash:
            return model
    return None


def check_recipe(header: coder.Header, code, dataset) -> None:
    """Refuse a code other than Alice's (code name, then the recipe hash), saying what differs when possible."""
    if code.name != header.code:
        raise CodingError(f"wrong code: the file holds a {header.code} code, not {code.name}; decode with --code "
                          f"{header.code}")
    if coder.short_hash(recipe_description(code), coder.HASH_BYTES["recipe"]) == header.recipe_hash:
        return
    which = _differences(header.description and header.description["settings"], code.settings or {})
    match = None if which else _matching_model(header, dataset)
    hint = which or (f"it matches --model {match}" if match else "check --model, and that both sides run the same "
                     "mdl_utils version (a scale's settings may have changed)")
    raise CodingError(f"wrong recipe: the file's {header.code} code was written with other settings than "
                      f"--model {code.model_arg} at scale={code.scale or 'custom'} gives; {hint}")


def file_numerics(header: coder.Header, num_threads: int) -> str | None:
    """The CPU numerics a decoder needs for this file: "portable", "native" when the file was written with native
    numerics on this kind of CPU (and ``num_threads``), else None (a GPU's file, or another CPU's native one)."""
    kind = coder.numerics_of(header.environment_hash)
    if kind == "native":
        return "native" if _native_here(num_threads) == header.environment_hash else None
    return "portable" if kind == "portable" else None


def _native_here(num_threads: int) -> bytes:
    """The environment field of a file written on this CPU with native numerics and ``num_threads``."""
    return coder.environment_field(environment(num_threads, facts=numerics.native_environment()))


def check_environment(header: coder.Header, num_threads: int, device: str = "cpu") -> None:
    """Refuse, before any label, a file whose environment field differs from this decoder's: other numerics (native
    numerics of another CPU, a GPU's file), thread count, torch/constriction or code version; the one-line error
    names the difference and the fix."""
    mine = environment(num_threads, device)
    if coder.environment_field(mine) == header.environment_hash:
        return
    theirs = coder.numerics_of(header.environment_hash)
    fix = _numerics_fix(header, mine, num_threads)
    if header.description is not None:
        raise CodingError(f"other environment: {_differences(header.description['environment'], mine)}; {fix}")
    if theirs != mine["numerics"]:
        raise CodingError(fix)
    for threads in range(1, 65):
        if coder.environment_field(environment(threads, device)) == header.environment_hash:
            raise CodingError(f"wrong thread count: the file was written with {threads} torch thread(s), this "
                              f"decoder runs {num_threads}; decode with --threads {threads}")
    where = {"native": "another kind of CPU (native numerics)", "cuda": "another GPU or CUDA/cuDNN version"}
    raise CodingError(f"other software or machine: the file was written with another torch, constriction or code "
                      f"version{', or on ' + where[theirs] if theirs in where else ''} (here: torch {mine['torch']}, "
                      f"constriction {mine['constriction']}, code version {mine['code_version']}, "
                      f"{numerics.describe(mine)}); decode with the encoder's versions, or ask for a self-describing "
                      "file (--describe) that names them")


def _numerics_fix(header: coder.Header, mine: dict, num_threads: int) -> str:
    """Words for a file whose numerics (portable, native, cuda) differ from this decoder's environment ``mine``."""
    theirs, here = coder.numerics_of(header.environment_hash), numerics.describe(mine)
    if theirs == mine["numerics"]:
        return "decode with the encoder's versions, thread count (--threads) and kind of machine"
    if theirs == "cuda":
        return (f"the file was written on a GPU (CUDA), and decodes only on the same kind of GPU with the same CUDA "
                f"and cuDNN versions (this decoder: {here}); decode there with --device cuda")
    if mine["numerics"] == "cuda":
        return f"the file was written on the CPU with {theirs} numerics; decode on the CPU (--device cpu)"
    if theirs == "portable":
        return (f"the file was written with portable numerics, this decoder runs {here}; decode without "
                f"--fast-numerics or {numerics.ENV}=native")
    if file_numerics(header, num_threads) == "native":
        return (f"the file was written with native numerics on this kind of CPU, this decoder runs {here}; decode "
                f"with {numerics.ENV}=native (python -m mdl_utils.decompress switches by itself)")
    return (f"the file was written with native numerics (--fast-numerics) on another kind of CPU, and decodes only "
            f"there; this machine: {numerics.describe(numerics.native_environment())}; decode on the encoder's "
            "kind of CPU, or have the labels encoded again with portable numerics (the default)")


# ------------------------------------------------------------ encode, decode


def _drive(block, rc: coder.RangeCoder, alice: bool):
    """Run one block's symbol generator against the range coder: Alice encodes the symbols it yields, Bob
    decodes them and sends them back. Returns the generator's (computed bits, labels, label probabilities)."""
    try:
        probs, symbols = next(block)
        while True:
            if alice:
                rc.encode(symbols, probs)
            else:
                symbols = rc.decode(probs)
            probs, symbols = block.send(symbols)
    except StopIteration as done:
        return done.value


def _run(code, x: torch.Tensor, rc: coder.RangeCoder, n: int, num_classes: int, labels: np.ndarray | None, *,
         num_threads: int, parallel: bool, progress: bool, desc: str, device: str = "cpu"):
    """The one coding loop, block by block: Alice (``labels`` given) encodes, Bob (None) decodes.
    Returns (labels, (n, K) float32 label probabilities, computed bits: the exactly rounded total of every coded
    symbol's bits, check symbols apart)."""
    alice = labels is not None
    out = labels.copy() if alice else np.full(n, -1, dtype=np.int64)
    probs, bits = np.empty((n, num_classes), dtype=np.float32), []
    code.start(x, num_threads, parallel, device)
    try:
        for start, end in tqdm(code.blocks(), desc=desc, disable=not progress):
            block = code.symbols(x, torch.from_numpy(out[:start].copy()), start, end,
                                 out[start:end].copy() if alice else None)
            block_bits, out[start:end], probs[start:end] = _drive(block, rc, alice)
            bits.append(block_bits)
    finally:
        code.close()
    return out, probs, total(np.concatenate(bits) if bits else [])


@dataclasses.dataclass
class Encoded:
    """What Alice wrote: the file's bytes and header, the label probabilities, sizes and time."""

    data: bytes
    header: coder.Header
    probs: np.ndarray              # (n, K) float32, the coder's input for every label
    codelength_bits: float         # the code's computed codelength sum -log2 p (float64), model bits included
    check_bits: int                # the per-block check symbols in the payload (coder.CHECK_BITS each)
    sections: dict[str, int]       # bits of each part of the file (coder.File.sections)
    description: dict              # the full settings, environment and inputs (the self-describing section)
    reference_bits: float | None   # the code's chapter formula on this run's numbers (switch, self_switch)
    seconds: float

    @property
    def file_bits(self) -> int:
        return 8 * len(self.data)

    @property
    def payload_bits(self) -> int:
        return self.sections["payload"]

    @property
    def model_bits(self) -> int:
        return self.sections.get("model", 0)

    @property
    def header_bits(self) -> int:
        """Everything in the file besides model and payload: header, CRC, lengths, description."""
        return self.file_bits - self.payload_bits - self.model_bits

    @property
    def description_bits(self) -> int:
        """What the self-describing section adds (or added) to the file."""
        return 8 * len(coder.section(coder.describe(self.description)))


@dataclasses.dataclass
class Decoded:
    labels: np.ndarray             # int64
    probs: np.ndarray              # (n, K) float32, as recomputed by Bob
    header: coder.Header
    seconds: float


def encode(dataset: data.Dataset, code, *, num_threads: int | None = 1, describe: bool = False,
           parallel: bool = False, progress: bool = True, device: str = "cpu") -> Encoded:
    """Alice: write ``dataset.y`` with ``code`` (an object of :data:`CODE_CLASSES`) into the bytes of a file;
    ``describe``: add the self-describing section; ``parallel``: one process per prequential chain; ``device``:
    where the models train (a file written on CUDA decodes only on the same kind of GPU and software)."""
    y = dataset.y.numpy().astype(np.int64)
    threads = num_threads or torch.get_num_threads()
    description = full_description(dataset, code, threads, device)  # refuses numerics not in effect, before work
    rc, t0 = coder.RangeCoder(), time.perf_counter()
    with torch_threads(threads):
        model_bytes = code.prepare(dataset, device)
        _, probs, computed = _run(code, dataset.x, rc, dataset.n, dataset.K, y, num_threads=threads,
                                  parallel=parallel, progress=progress, desc=f"encode {dataset.name}/{code.name}",
                                  device=device)
    header = make_header(dataset, code, threads, y, describe, device)
    data_ = coder.pack(header, rc.words(), model_bytes)
    return Encoded(data=data_, header=header, probs=probs, codelength_bits=8.0 * len(model_bytes) + computed,
                   check_bits=code.checks * coder.CHECK_BITS, sections=coder.unpack(data_).sections,
                   description=description, reference_bits=code.reference_bits(), seconds=time.perf_counter() - t0)


def decode(data_: bytes, dataset: data.Dataset, code=None, *, model: str | None = None, num_threads: int = 1,
           parallel: bool = False, progress: bool = True, device: str = "cpu") -> Decoded:
    """Bob: recover the labels from the file's bytes and the inputs ``dataset.x`` (never reads ``dataset.y``).

    The code is ``code``, else the file's description, else the header's code, scale and seed with ``model``.
    Before decoding any label: the file (magic, version, CRC-32), the inputs, the recipe and the environment
    (numerics, ``num_threads``, versions); before each block: its check symbol; after: the CRC-32 of the labels.
    """
    f = coder.unpack(data_)
    check_inputs(f.header, dataset)
    code = code if code is not None else bob_code(f.header, dataset, model)
    check_recipe(f.header, code, dataset)
    check_environment(f.header, num_threads, device)
    rc, t0 = coder.RangeCoder(f.payload), time.perf_counter()
    with torch_threads(num_threads):
        code.load(f.model_bytes, dataset.x, device)
        labels, probs, _ = _run(code, dataset.x, rc, f.header.n, dataset.K, None, num_threads=num_threads,
                                parallel=parallel, progress=progress, desc=f"decode {dataset.name}/{code.name}",
                                device=device)
    if coder.labels_crc(labels) != f.header.labels_crc:
        raise CodingError("decoded labels fail the CRC-32 check: Bob's models differ from Alice's although the "
                          "header and every block's check agreed; decode on a machine like the encoder's")
    return Decoded(labels=labels, probs=probs, header=f.header, seconds=time.perf_counter() - t0)


# ---------------------------------------------------------------- the chapter


@dataclasses.dataclass(frozen=True)
class Settings:
    """Per dataset, the codes written to a file and read back (``uniform``, ``<code>_<model>``,
    ``switch-<model>-...-uniform``), with the settings of their chapters at the same scale; ``num_threads``:
    torch CPU threads of encoder and decoder (both must use the same); ``parallel_chains``: one process per
    prequential chain of the switch code."""

    num_threads: int = 1
    parallel_chains: bool = True
    models: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=lambda: {
        "mnist": ("uniform", "prequential_mlp", "prequential_vgg_mnist", "two_part_mlp",
                  "switch-mlp-vgg_mnist-uniform", "self_switch_vgg_mnist"),
        "cifar10": ("uniform", "prequential_mlp", "prequential_vgg_cifar", "switch-mlp-vgg_cifar-uniform",
                    "self_switch_vgg_cifar"),
        "synthetic": ("uniform", "prequential_mlp")})


_SMOKE = ("uniform", "prequential_mlp", "two_part_mlp", "switch-mlp-uniform", "self_switch_mlp")
SCALES = {
    "smoke": dict(parallel_chains=False, models={"mnist": _SMOKE, "cifar10": ("uniform", "prequential_mlp"),
                                                 "synthetic": _SMOKE}),
    # cpu: the MNIST codes whose chains take minutes on 2 cores (a switch between the paper's MLP recipe and ours);
    # CIFAR-10: uniform, the MLP's prequential code and a switch between it and our best run, vgg6_warm (its chain
    # takes half an hour, twice per round trip).
    "cpu": dict(models={"mnist": ("uniform", "prequential_mlp", "prequential_mlp_warm", "two_part_mlp",
                                  "switch-mlp-mlp_warm-uniform", "self_switch_mlp"),
                        "cifar10": ("uniform", "prequential_mlp", "switch-mlp-vgg6_warm-uniform"),
                        "synthetic": ("uniform", "prequential_mlp")}),
}


settings = scales.settings_of(Settings, SCALES)


def split_name(model: str) -> tuple[str, str | None]:
    """"prequential_mlp" -> ("prequential", "mlp"); "switch-mlp-uniform" -> ("switch", "mlp");
    "uniform" -> ("uniform", None)."""
    if model.split("-")[0] == switch.MIXTURE:
        return "switch", "-".join(switch_models(model)) or None
    for code in ("uniform", "prequential", "two_part", "self_switch"):
        if model == code or model.startswith(code + "_"):
            return code, (model[len(code) + 1:] or None)
    raise ValueError(f"unknown code in {model!r}; write uniform, prequential_<model>, two_part_<model>, "
                     "self_switch_<model> or switch-<model>-...-uniform")


def networks(model: str, dataset: str, scale: str) -> list[str]:
    """The architectures a file code trains (the registry's hook): a two-part code's network, the prequential
    runs' recipes of the other codes, none for the uniform code."""
    code, network = split_name(model)
    if code == "uniform" or not network:
        return []
    if code == "two_part":
        return [network]
    return [n for m in switch_models(network) for n in codes.networks("prequential", m, dataset, scale)]


def result_model(code) -> str:
    """The chapter's model name of a code: uniform, <code>_<model>, switch-<model>-...-uniform."""
    if code.name == "switch":
        return switch.mixture_name(switch_models(code.model_arg))
    return "uniform" if code.model_arg is None else f"{code.name}_{code.model_arg}"


def chapter_counterpart(result: CodeResult) -> tuple[str, str] | None:
    """(chapter, model) of the stored result whose codelength this file's computed codelength reproduces."""
    code, network = result.params["code"], result.params["network"]
    return {"prequential": ("prequential", network), "switch": ("switch", result.model),
            "self_switch": ("switch", network)}.get(code)


def compute(dataset: str, model: str, scale: str, *, seed: int = 0, device: str = "auto",
            data_root: str | None = None) -> CodeResult:
    """Encode, write, read, decode and check the training labels of ``dataset`` with the code ``model``
    (e.g. "prequential_mlp", "switch-mlp-uniform") on the CPU, as many labels as that code's chapter sends."""
    if device not in ("auto", "cpu"):
        raise ValueError("the coder runs on the CPU only (device='cpu'): GPU kernels are not bit-for-bit "
                         "reproducible for Bob")
    code_name, network = split_name(model)
    n = (two_part.settings(scale) if code_name == "two_part" else prequential.settings(scale)).n_train
    train = data.load(dataset, "train", root=data_root, n=n, seed=seed)
    code = code_for(code_name, train.name, train.n, train.K, network, scale, seed)
    s = settings(scale)
    with tempfile.TemporaryDirectory() as tmp:
        return round_trip(train, code, scale=scale, path=Path(tmp) / "labels.mdl", num_threads=s.num_threads,
                          parallel=s.parallel_chains, progress=False)


def round_trip(dataset: data.Dataset, code, *, scale: str, path: str | Path | None = None, num_threads: int = 1,
               parallel: bool = False, progress: bool = True) -> CodeResult:
    """Encode, (write, read,) decode, check; the CodeResult of chapter ``bytes``. Bob rebuilds the code from the
    header and the model name when it has a named scale. Raises CodingError when the decoded labels or
    probabilities differ from Alice's."""
    with Stopwatch() as sw:
        enc = encode(dataset, code, num_threads=num_threads, parallel=parallel, progress=progress)
        data_ = coder.read(coder.write(path, enc.data)) if path is not None else enc.data
        bob = dataclasses.replace(dataset, y=torch.full_like(dataset.y, -1))
        dec = decode(data_, bob, None if code.scale else code, model=code.model_arg, num_threads=num_threads,
                     parallel=parallel, progress=progress)
    labels_ok = bool(np.array_equal(dec.labels, dataset.y.numpy()))
    probs_ok = bool(np.array_equal(dec.probs, enc.probs))
    if not (labels_ok and probs_ok):
        raise CodingError(f"round trip failed: labels equal {labels_ok}, probabilities equal {probs_ok}")
    return _result(dataset, code, enc, dec, scale, parallel, sw)


def _result(dataset, code, enc: Encoded, dec: Decoded, scale: str, parallel: bool, sw) -> CodeResult:
    """The chapter's CodeResult of a checked round trip: the file size is the codelength; parts split it."""
    payload_overhead = enc.payload_bits + enc.model_bits - enc.codelength_bits
    described = enc.header.description is not None
    reference = enc.codelength_bits if enc.reference_bits is None else enc.reference_bits
    return CodeResult(
        code="bytes", dataset=dataset.name, model=result_model(code), scale=scale, n=dataset.n, K=dataset.K,
        seed=dataset.seed or 0, codelength_bits=float(enc.file_bits),
        parts={"computed_codelength_bits": enc.codelength_bits, "reference_codelength_bits": float(reference),
               "model_bits": float(enc.model_bits), "payload_bits": float(enc.payload_bits),
               "header_bits": float(enc.header_bits), "fixed_header_bits": float(enc.sections["header"]),
               "self_describing_header_bits": float(enc.header_bits + (0 if described else enc.description_bits)),
               "file_bytes": float(len(enc.data)), "file_bits": float(enc.file_bits),
               "check_bits": float(enc.check_bits),
               "overhead_bits": enc.file_bits - enc.codelength_bits, "payload_overhead_bits": payload_overhead},
        params={"code": code.name, "network": code.model_arg, "encode_seconds": enc.seconds,
                "decode_seconds": dec.seconds, "round_trip_labels_equal": True,
                "round_trip_probabilities_equal": True, "num_threads": enc.description["environment"]["num_threads"],
                "parallel_chains": parallel, "format_version": coder.FORMAT_VERSION, "header": enc.description},
        provenance=provenance(device="cpu", stopwatch=sw, data_source=dataset.source),
        note=("codelength_bits is the actual file size (compact header included); parts.computed_codelength_bits "
              "is the code's bound sum -log2 p; labels and Bob's probabilities checked equal to Alice's"),
    )


FLOOR_NOTE = ("; the payload is shorter than the computed codelength because the coder gives every class at least "
              "2^-24: a label the model deemed less likely than that costs at most 24 bits in the file")


def _where_it_decodes(env: dict) -> str:
    """Where a file written in ``env`` decodes (with the same versions and thread count)."""
    return {"portable": "on any x86-64 CPU with AVX2", "native": "only on this kind of CPU, with native numerics",
            "cuda": "only on this kind of GPU, with the same CUDA and cuDNN"}.get(env.get("numerics"), "?")


def summary(enc: Encoded) -> str:
    """One line per quantity, for the command line."""
    n, d = enc.header.n, enc.description
    return "\n".join([
        f"code {enc.header.code} on {d['inputs'].get('path', d['inputs']['name'])} ({n:,} labels, "
        f"K={d['inputs']['K']})",
        f"computed codelength: {enc.codelength_bits:,.1f} bits ({enc.codelength_bits / n:.4f} bits/label)",
        f"file: {len(enc.data):,} bytes = {enc.file_bits:,} bits ({enc.file_bits / n:.4f} bits/label): payload "
        f"{enc.payload_bits:,}, model {enc.model_bits:,}, header {enc.header_bits:,} bits"
        + ("" if enc.header.description else f" ({enc.header_bits + enc.description_bits:,} self-describing)"),
        f"overhead: {enc.file_bits - enc.codelength_bits:+,.1f} bits (payload alone "
        f"{enc.payload_bits + enc.model_bits - enc.codelength_bits:+,.1f}, of which per-block checks "
        f"{enc.check_bits:,})" + (FLOOR_NOTE if enc.payload_bits + enc.model_bits < enc.codelength_bits else ""),
        f"numerics: {numerics.describe(d['environment'])} (the file decodes "
        f"{_where_it_decodes(d['environment'])})",
        f"encode time: {enc.seconds:.2f} s ({d['environment']['num_threads']} torch thread(s))",
    ])
