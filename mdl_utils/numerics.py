"""Portable numerics: the same bits on any x86-64 CPU with AVX2 of one vendor, one switch, on by default.

A decoder must retrain, bit for bit, the models the encoder trained, and a result must be the same number on
whichever machine reruns it. For one torch build, seed and thread count, three things make float32 training
differ from one x86-64 CPU to another, and portable numerics fixes each of them:

1. ATen's vectorized kernels (softmax, reductions, Adam, ...) are compiled for several instruction sets and
   picked at run time: AVX-512 lanes sum in another order than AVX2 lanes. ``ATEN_CPU_CAPABILITY=avx2`` caps the
   choice at AVX2, which every x86-64 CPU since 2013 (Intel Haswell, AMD Zen) has.
2. MKL (matrix products, and the im2col convolutions below) picks kernels per CPU vendor, model and cache size.
   ``MKL_CBWR=COMPATIBLE`` is the one branch of its conditional numerical reproducibility mode that MKL
   documents for Intel and AMD CPUs alike (SSE2 kernels without the approximate rcpps/rsqrtps instructions,
   fixed cache sizes, deterministic reductions); its AVX2 branch exists on Intel CPUs only (MKL runs its AUTO
   branch elsewhere). It costs about 1.8x in matrix products (measured: benchmarks/bench_numerics.py).
   Measured, an Intel and an AMD CPU still differ in the last bits under all of this: the CPU vendor is part of
   the portable environment (:func:`portable_environment`).
3. oneDNN (torch's "mkldnn" convolutions and bfloat16 products) and NNPACK choose algorithms and blockings per
   CPU, with no reproducibility guarantee across CPUs: both are switched off, so that convolutions go through
   ATen's im2col and MKL's products (the measured cost: ``benchmarks/bench_numerics.py``). bfloat16 autocast then
   has no fast kernel either, and our recipes train in float32.

The thread count is the fourth input of the bits; the codes fix it in their settings (``num_threads``) and the
file header (``--threads``). GPUs are another matter: CUDA kernels differ per GPU model and CUDA/cuDNN version,
so a result or a file made on a GPU is reproducible only on the same kind of GPU with the same software
(:func:`environment` says which; docs/NUMERICS.md).

On CUDA, cuBLAS is deterministic only with a fixed workspace (``CUBLAS_WORKSPACE_CONFIG``, set here too).
These variables are read when torch first computes (ATen's first dispatch, MKL's first call), not when torch
is imported: :func:`configure` sets them when ``mdl_utils`` is imported, so every entry point (the CLIs, the
chapter kernels, job workers, coder worker processes, the test session) gets them before torch computes.
:func:`state` reads back what torch and MKL actually use, and :func:`check` refuses to train or code when
portable numerics were asked for but are not in effect (torch computed before ``mdl_utils`` was imported). The
switch: ``MDL_NUMERICS=native`` in the environment, or ``--fast-numerics`` on the command lines (:func:`use`);
results and file headers then say ``native`` and name the CPU.
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import re
from pathlib import Path

ENV = "MDL_NUMERICS"
MODES = ("portable", "native")
# The variables portable numerics sets (read by ATen, MKL and oneDNN at their first use, not at import).
PORTABLE_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": "AVX2"}
PORTABLE_CAPABILITY = "AVX2"
CUBLAS_WORKSPACE = ":4096:8"  # cuBLAS is deterministic only with a fixed workspace, set before its first product
PORTABLE_CBWR = "COMPATIBLE"
# The version of the numbers: bump it when a change alters any code's bits for the same settings (training loop,
# models, recipes, coder). It enters checkpoint fingerprints, results' provenance and labels-file headers, and
# the committed references of tests/test_numerics.py fail until it is bumped and they are regenerated.
CODE_VERSION = 3  # 2: portable numerics; 3: hedged calibration (mdl_utils.codes.calibration)
_CBWR_BRANCHES = {0: "OFF", 1: "OFF", 2: "AUTO", 3: "COMPATIBLE", 4: "SSE2", 6: "SSSE3", 7: "SSE4_1", 8: "SSE4_2",
                  9: "AVX", 10: "AVX2", 11: "AVX512_MIC", 12: "AVX512", 13: "AVX512_MIC_E1", 14: "AVX512_E1"}
_CBWR_STRICT = 0x10000


class NumericsError(RuntimeError):
    """The numerics asked for are not the ones torch uses (or cannot be on this machine)."""


def requested() -> str:
    """The mode asked for: ``MDL_NUMERICS`` (portable unless it says native); a one-line error for other values."""
    mode = os.environ.get(ENV, "portable").strip().lower() or "portable"
    if mode not in MODES:
        raise NumericsError(f"{ENV}={os.environ[ENV]!r}: choose portable (the default) or native")
    return mode


def configure(mode: str | None = None) -> None:
    """Set the environment of ``mode`` (default: :func:`requested`) and torch's switches, in this process and in
    the processes it starts. Effective only before torch first computes; :func:`check` tells whether it was."""
    mode = mode or requested()
    if mode not in MODES:
        raise NumericsError(f"unknown numerics mode {mode!r}; choose portable or native")
    os.environ[ENV] = mode
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    for key, value in PORTABLE_ENV.items():
        if mode == "portable":
            os.environ[key] = value
        elif os.environ.get(key) == value:  # ours, inherited from a portable parent process
            del os.environ[key]
    import torch

    torch.backends.mkldnn.enabled = mode == "native"
    torch.backends.nnpack.set_flags(mode == "native")


FAST_HELP = ("native numerics: this CPU's own kernels (oneDNN, AVX-512), faster, but the numbers and files are "
             "then this kind of CPU's only (default: portable numerics, the same bits on any x86-64 CPU with AVX2 "
             "of one vendor)")


def add_option(parser) -> None:
    """The command lines' ``--fast-numerics`` switch (then :func:`use` "native" before anything computes)."""
    parser.add_argument("--fast-numerics", action="store_true", help=FAST_HELP)


def use(mode: str) -> dict:
    """Switch this process to ``mode`` (the CLIs' ``--fast-numerics``) before anything computes; returns
    :func:`state`, and raises NumericsError when torch had already computed under the other mode."""
    configure(mode)
    return check(mode)


def _mkl_cbwr() -> str:
    """MKL's reproducibility mode as MKL reports it ("AVX2,STRICT", "OFF", ...), "unknown" when not readable."""
    import torch

    try:
        lib = ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"))
        get = lib.mkl_serv_cbwr_get
    except (OSError, AttributeError):
        return "unknown"
    get.restype, get.argtypes = ctypes.c_int, [ctypes.c_int]
    value = get(-1)  # MKL_CBWR_ALL
    branch = _CBWR_BRANCHES.get(value & 0xFFFF, str(value & 0xFFFF))
    return branch + (",STRICT" if value & _CBWR_STRICT else "")


def state() -> dict:
    """The numerics torch uses now: mode (portable only when all of it holds), ATen's CPU capability, MKL's
    reproducibility mode, and whether oneDNN and NNPACK are on."""
    import torch

    s = {"cpu_capability": torch.backends.cpu.get_cpu_capability(), "mkl_cbwr": _mkl_cbwr(),
         "mkldnn": bool(torch.backends.mkldnn.enabled), "nnpack": bool(torch._C._get_nnpack_enabled())}
    portable = (s["cpu_capability"] == PORTABLE_CAPABILITY and not s["mkldnn"] and not s["nnpack"]
                and (s["mkl_cbwr"] == PORTABLE_CBWR
                     or (s["mkl_cbwr"] == "unknown" and os.environ.get("MKL_CBWR") == PORTABLE_CBWR)))
    return {"mode": "portable" if portable else "native", **s}


def check(mode: str | None = None) -> dict:
    """:func:`state`, after checking that it is ``mode`` (default: :func:`requested`); a one-line NumericsError
    naming what differs and the fix otherwise."""
    mode = mode or requested()
    s = state()
    if mode == "native" or s["mode"] == "portable":
        return s
    if s["cpu_capability"] in ("DEFAULT", "NONE") or not s["cpu_capability"].startswith("AVX"):
        raise NumericsError(f"portable numerics need an x86-64 CPU with AVX2; this one gives torch "
                            f"{s['cpu_capability']} ({platform.machine()}): set {ENV}=native (or --fast-numerics); "
                            "results and files are then this machine's only")
    wrong = [f"{k} {s[k]}" for k, ok in (("cpu_capability", s["cpu_capability"] == PORTABLE_CAPABILITY),
                                         ("mkl_cbwr", s["mkl_cbwr"] in (PORTABLE_CBWR, "unknown")),
                                         ("mkldnn", not s["mkldnn"]), ("nnpack", not s["nnpack"])) if not ok]
    raise NumericsError(f"portable numerics are not in effect ({', '.join(wrong)}): torch computed before mdl_utils "
                        "set them, or they were changed; import mdl_utils before running any torch code (or set "
                        f"{ENV}=native to accept this machine's own numerics)")


@functools.lru_cache(maxsize=None)
def _config_versions() -> dict:
    """MKL's and oneDNN's versions, from torch's build configuration."""
    import torch

    text = torch.__config__.show()
    mkl = re.search(r"Math Kernel Library Version ([\w.]+)", text)
    dnn = re.search(r"MKL-DNN v([\w.]+)", text)
    return {"mkl": mkl.group(1) if mkl else None, "onednn": dnn.group(1) if dnn else None}


@functools.lru_cache(maxsize=None)
def cpu_identity() -> dict:
    """The CPU as /proc/cpuinfo names it: vendor, model name and its widest vector instructions (``isa``: AVX512,
    AVX2, AVX; " AMX" appended when it has AMX tiles). Read without torch: asking torch would fix its kernel choice
    before the numerics are set."""
    info = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("vendor_id", "model name", "flags") and key.strip() not in info:
                info[key.strip()] = value.strip()
    except OSError:
        pass
    flags = set(info.get("flags", "").split())
    isa = next((name for flag, name in (("avx512f", "AVX512"), ("avx2", "AVX2"), ("avx", "AVX")) if flag in flags),
               platform.machine())
    return {"vendor": info.get("vendor_id") or platform.machine(),
            "model": info.get("model name") or platform.processor() or platform.machine(),
            "isa": isa + (" AMX" if "amx_tile" in flags else "")}


def cpu() -> dict:
    """The CPU a number was computed on (a result's provenance): :func:`cpu_identity`, the capability torch uses
    (AVX2 under portable numerics), MKL and oneDNN versions."""
    import torch

    return {**cpu_identity(), "capability": torch.backends.cpu.get_cpu_capability(), **_config_versions()}


def environment(device="cpu") -> dict:
    """What changes the bits besides settings, data, seed, thread count and torch's version, for a computation on
    ``device``: on the CPU the numerics mode, and with native numerics the CPU (:func:`native_environment`); on CUDA the GPU's name and CUDA/cuDNN versions. Hashed into file headers and
    checkpoint fingerprints; raises NumericsError when the numerics asked for are not in effect."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return {"device": "cuda", "numerics": "cuda", "gpu": torch.cuda.get_device_name(device),
                "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()}
    s = check()
    return portable_environment() if s["mode"] == "portable" else native_environment()


# The CPU vendor whose portable numerics name no vendor: every file and result made before the vendor entered the
# environment (code version 2) was made on Intel CPUs, and keeps its environment.
REFERENCE_VENDOR = "GenuineIntel"
VENDOR_WORDS = {"GenuineIntel": "Intel", "AuthenticAMD": "AMD", "HygonGenuine": "Hygon", "CentaurHauls": "VIA"}


def portable_environment(vendor: str | None = None) -> dict:
    """The :func:`environment` of portable numerics on a CPU of ``vendor`` (default: this CPU's ``vendor_id``).

    Portable numerics give the same bits on every x86-64 CPU with AVX2 *of one vendor*: measured, a run on an
    AMD EPYC differs from the same run on an Intel Xeon in the last float32 bits from the first trained block on
    (docs/NUMERICS.md), although both report the same kernels (AVX2, MKL's COMPATIBLE branch, no oneDNN). So the
    vendor enters the environment, except for Intel (:data:`REFERENCE_VENDOR`), whose files predate it.
    """
    vendor = vendor or cpu_identity()["vendor"]
    return {"device": "cpu", "numerics": "portable", **({} if vendor == REFERENCE_VENDOR else {"cpu_vendor": vendor})}


def vendor_words(env: dict) -> str:
    """The CPU vendor of a portable :func:`environment`, in words ("Intel", "AMD")."""
    vendor = env.get("cpu_vendor", REFERENCE_VENDOR)
    return VENDOR_WORDS.get(vendor, vendor)


def native_environment() -> dict:
    """The :func:`environment` of this CPU under native numerics, also when this process runs portable ones (what
    a file written here with ``--fast-numerics`` says): the CPU's model and widest instructions, which pick
    torch's, MKL's and oneDNN's kernels (their versions come with torch's, which the file header names).
    Computes nothing with torch."""
    c = cpu_identity()
    return {"device": "cpu", "numerics": "native", "cpu_isa": c["isa"], "cpu": f"{c['vendor']} {c['model']}"}


def describe(env: dict) -> str:
    """Words for an :func:`environment`: "portable numerics (Intel CPUs)", "native numerics on AVX512 (GenuineIntel ...)",
    "CUDA on NVIDIA H200 (CUDA 13.0, cuDNN 92400)"."""
    if env.get("numerics") == "portable":
        return f"portable numerics ({vendor_words(env)} CPUs)"
    if env.get("numerics") == "cuda":
        return f"CUDA on {env.get('gpu')} (CUDA {env.get('cuda')}, cuDNN {env.get('cudnn')})"
    return f"native numerics on {env.get('cpu_isa')} ({env.get('cpu')})"
