"""The book's codes as files (chapter 9; the range coder and the file format: :mod:`mdl_utils.coder`).

Alice writes the training labels into a file with a range coder under the
per-sample distributions of a code; Bob, who has the inputs x and the file,
recovers every label. Each code is one object (:mod:`mdl_utils.codes.file_codes`, re-exported here); one loop
(:func:`_run`) drives every code block by block, encoding on Alice's side and decoding on Bob's:

* ``prepare(dataset)`` (Alice) / ``load(model_bytes, x)`` (Bob): what the file carries besides the labels
  (two_part: the float32 weights);
* ``start(x, num_threads, parallel)`` / ``close()``: before the first block and after the last (the
  prequential chains, :class:`mdl_utils.codes.chains.Chains`);
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
AVX2 of the encoder's vendor (:mod:`mdl_utils.numerics`); with native numerics (``--fast-numerics``) on
the encoder's kind of CPU only; on CUDA on the same GPU and CUDA/cuDNN versions
only. The header's environment field makes Bob check all of it before he decodes
anything (:mod:`mdl_utils.codes.file_header` names the difference), a check symbol per
block stops him at the first block whose probabilities differ from Alice's
(:data:`mdl_utils.coder.CHECK_BITS`), and a CRC-32 of the labels is checked at
the end.
"""


from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch
from tqdm import tqdm

from .. import coder, data, scales
from ..bits import total
from ..coder import CodingError
from .. import models
from ..training import torch_threads
from . import prequential, switch, two_part
from .file_header import check_environment, check_inputs, full_description, make_header, recipe_description, _differences
from .file_codes import (CODE_CLASSES, CODES, ChainBlock, ChainCode, PrequentialCode, SelfSwitchCode,  # noqa: F401
                         SwitchCode, SwitchWeights, TwoPartCode, UniformCode)


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


def _matching_model(header: coder.Header, dataset) -> str | None:
    """The model (run) name whose recipe at the header's scale has the file's recipe hash (single-model codes)."""
    if header.code in ("uniform", "switch") or header.scale is None:
        return None
    for model in [*models.names(), *prequential.settings(header.scale).recipes]:
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
    code.code_version = check_environment(f.header, num_threads, device)
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






