"""What a labels file's header says about the file, and the checks a decoder makes before the first label: the
recipe (:func:`recipe_description`), the inputs (:func:`check_inputs`: the dataset, or an image folder's classes and
images, never its path) and the environment (:func:`check_environment`: the numerics, portable, native on which CPU,
or which GPU, the versions and the thread count), each refusal one line that names the difference and the fix.
"""

from __future__ import annotations

from importlib.metadata import version

import numpy as np
import torch

from .. import coder, models, numerics
from ..checkpoint import digest
from ..coder import CodingError


QUANTIZATION = "softmax (mixture) float64 -> float32, constriction Categorical(perfect=False), 24-bit"


# Earlier code versions whose files this version still decodes (with that version's rules: 2 calibrated with the
# temperature alone, mdl_utils.codes.calibration); the versions before 2 had no portable numerics.
DECODABLE_VERSIONS = (2,)


def environment(num_threads: int, device: str = "cpu", facts: dict | None = None,
                code_version: int = numerics.CODE_VERSION) -> dict:
    """What Bob's software and machine must share with Alice's for bit-identical models (hashed into the header):
    torch and constriction versions, the code version, thread count, format and quantization, and the numerics of
    ``device`` (``facts``, default numerics.environment: portable, or native on this CPU, or this GPU)."""
    return {"torch": torch.__version__, "constriction": version("constriction"), "code_version": code_version,
            "num_threads": int(num_threads), "format": coder.FORMAT_VERSION, "quantization": QUANTIZATION,
            **(facts or numerics.environment(device))}


def inputs_description(dataset) -> dict:
    """The inputs Bob must have (hashed into the header): the dataset (a built-in's name; for an image folder its
    class names, not its path: a copy, another spelling of the path or a symlink holds the same inputs), split,
    size, order, K, SHA-256 of x."""
    folder = dataset.name not in coder.DATASET_IDS
    return {"name": "own data" if folder else dataset.name, **({"classes": list(dataset.classes)} if folder
                                                                   else {}),
            "split": dataset.split, "n": dataset.n, "K": dataset.K, "order_seed": dataset.seed,
            "inputs_sha256": digest(dataset.x)}


def recipe_description(code) -> dict:
    """The agreed settings of a code (hashed into the header): its name and its settings/recipes as JSON, and the
    source fingerprints of the registered networks it trains (a decoder whose function differs refuses the file)."""
    nets = [r.model for r in getattr(code, "recipes", [])] or [(code.settings or {}).get("model")]
    own = {n: models.fingerprint(n) for n in nets if n and models.fingerprint(n)}
    return {"code": code.name, "settings": code.settings, **({"networks": own} if own else {})}


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


def check_dataset_name(header: coder.Header, name: str) -> None:
    """Refuse a dataset other than the built-in one the file names, before its inputs are loaded."""
    if header.dataset is not None and name != header.dataset:
        raise CodingError(f"wrong dataset: the file holds labels of {header.dataset!r}, not {name!r}; "
                          f"decode with --dataset {header.dataset}")


def check_inputs(header: coder.Header, dataset) -> None:
    """Refuse inputs other than Alice's (dataset, n, order seed, then the inputs hash) before decoding."""
    check_dataset_name(header, dataset.name)
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


def check_environment(header: coder.Header, num_threads: int, device: str = "cpu") -> int:
    """Refuse, before any label, a file whose environment field differs from this decoder's: other numerics (native
    numerics of another CPU, a GPU's file), thread count, torch/constriction or code version (but the earlier
    versions this one decodes, DECODABLE_VERSIONS); the one-line error names the difference and the fix. Returns
    the file's code version."""
    mine = environment(num_threads, device)
    for code_version in (numerics.CODE_VERSION, *DECODABLE_VERSIONS):
        if coder.environment_field({**mine, "code_version": code_version}) == header.environment_hash:
            return code_version
    theirs = coder.numerics_of(header.environment_hash)
    fix = _numerics_fix(header, mine, num_threads)
    if theirs == mine["numerics"] == "portable":
        _check_vendor(header, mine)
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


def _check_vendor(header: coder.Header, mine: dict) -> None:
    """Refuse a file written with portable numerics on another CPU vendor's machine (portable numerics hold within
    one vendor: numerics.portable_environment), naming both vendors and the fix."""
    for vendor in numerics.VENDOR_WORDS:
        facts = numerics.portable_environment(vendor)
        if facts == {k: mine[k] for k in ("device", "numerics", "cpu_vendor") if k in mine}:
            continue
        if any(coder.environment_field(environment(t, facts=facts, code_version=v)) == header.environment_hash
               for t in range(1, 65) for v in (numerics.CODE_VERSION, *DECODABLE_VERSIONS)):
            theirs, here = numerics.vendor_words(facts), numerics.vendor_words(mine)
            raise CodingError(f"the file was written with portable numerics on an {theirs} CPU, and this one is "
                              f"{here}: portable numerics give the same bits within one CPU vendor only; decode on "
                              f"an {theirs} x86-64 CPU with AVX2")


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
