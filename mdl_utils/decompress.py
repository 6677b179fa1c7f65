"""Bob: ``python -m mdl_utils.decompress labels.mdl [--dataset folder:<path>] [--model mlp] [--out labels.npy]``

Reads a labels file written by mdl_utils.compress, loads the inputs the header
names (dataset, size, order seed; checked against the hash of the inputs),
recovers every label (retraining the prequential models on the labels decoded
so far) and checks them against the CRC in the header. The numerics follow the
file: portable, or native when it was written with --fast-numerics on this kind
of CPU (anything else is refused before the first label, saying why). The --out path is
checked before any work and written atomically, under exactly that name. Prints
what it did; exits non-zero with a one-line error on any mismatch, and with one
line on Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from . import coder, data, numerics
from .codes import file_header, files
from .compress import INTERRUPTED, check_counts
from .results import check_writable, save_array


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m mdl_utils.decompress", description=__doc__.split("\n\n")[1])
    ap.add_argument("input", help="a labels file written by python -m mdl_utils.compress")
    ap.add_argument("--dataset", default=None, help="the dataset whose inputs Bob has (default: the one the file "
                                                    "names; an image folder must be named: folder:<path>)")
    ap.add_argument("--model", default=None, help="the model Alice named (--model), unless the file describes it")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads, as Alice's (default 1)")
    ap.add_argument("--parallel", action="store_true", help="one process per prequential chain (switch code)")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="as Alice's --device (default cpu)")
    ap.add_argument("--data-root", default=None, help="data folder (default: MDL_DATA)")
    ap.add_argument("--out", default=None, help="save the decoded labels (.npy, int64) at exactly this path")
    ap.add_argument("--no-progress", action="store_true")
    return ap


def bobs_inputs(header: coder.Header, dataset: str | None, root: str | None) -> data.Dataset:
    """The first n inputs, in the file's transmission order, of the dataset Bob names (else the file's)."""
    name = dataset or header.dataset
    if name is None:
        alice = ((header.description or {}).get("inputs") or {}).get("path")
        raise coder.CodingError("the file holds labels of your own dataset (an image folder, arrays or a registered "
                                "name); name it as Alice did: --dataset "
                                + (alice or "folder:<path>, npz:<path> or the registered name"))
    file_header.check_dataset_name(header, name)  # before loading another dataset (perhaps not on this machine)
    inputs = data.load(name, "train", root=root, seed=header.seed)
    if inputs.n < header.n:
        raise coder.CodingError(f"{name} has {inputs.n:,} training samples but the file holds {header.n:,} labels; "
                                f"decode with Alice's dataset (--dataset, --data-root)")
    return inputs.head(header.n)


def check_out(out: str | None, source: str) -> None:
    """--out must be writable and must not be the labels file itself."""
    if out is not None:
        check_writable(out, "labels.npy")
        if Path(out).resolve() == Path(source).resolve():
            raise ValueError(f"--out {out} is the labels file being read; give another path, e.g. labels.npy")


def follow_numerics(header: coder.Header, num_threads: int, device: str) -> None:
    """Switch to the CPU numerics the file was written with (native on this kind of CPU, or portable), before
    anything computes; other files are refused later by bytes.check_environment, which says why."""
    mode = file_header.file_numerics(header, num_threads) if device == "cpu" else None
    if mode is not None and mode != numerics.requested():
        numerics.use(mode)
        print(f"the file was written with {mode} numerics; decoding with {mode} numerics")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        check_counts(0, args.threads)
        check_out(args.out, args.input)
        raw = coder.read(args.input)
        header = coder.unpack(raw).header
        follow_numerics(header, args.threads, args.device)
        inputs = bobs_inputs(header, args.dataset, args.data_root)
        dec = files.decode(raw, inputs, model=args.model, num_threads=args.threads, parallel=args.parallel,
                                progress=not args.no_progress, device=args.device)
        if args.out:
            save_array(Path(args.out), dec.labels, dtype=np.int64)
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130
    except (ValueError, RuntimeError, OSError, KeyError) as e:  # CodingError, DataUnavailableError, ...
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    print(f"decoded {header.n:,} labels of {inputs.name} (train split, K={inputs.K}) with the {header.code} code")
    print(f"file: {len(raw):,} bytes ({8 * len(raw) / header.n:.4f} bits/label); labels CRC-32 OK")
    print(f"decode time: {dec.seconds:.2f} s ({args.threads} torch thread(s))")
    if args.out:
        print(f"labels saved to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
