"""Bob: ``python -m mdl_utils.decompress labels.mdl --dataset mnist [--out labels.npy]``

Reads a labels file written by mdl_utils.compress, loads the inputs the header
names (dataset, size, order seed; checked against the SHA-256 of the inputs),
recovers every label (retraining the prequential models on the labels decoded
so far) and checks them against the SHA-256 in the header. Prints what it did;
exits non-zero with a one-line error on any mismatch.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from . import coder, data
from .codes import bytes as bytes_code


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mdl_utils.decompress", description=__doc__.split("\n\n")[1])
    ap.add_argument("input", help="a labels file written by python -m mdl_utils.compress")
    ap.add_argument("--dataset", required=True, help="the dataset whose inputs Bob has (must match the file)")
    ap.add_argument("--data-root", default=None, help="data folder (default: MDL_DATA)")
    ap.add_argument("--out", default=None, help="save the decoded labels (.npy, int64)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    try:
        raw = coder.read(args.input)
        header, _, _ = coder.unpack(raw)
        want = header["dataset"]
        if args.dataset != want["name"]:
            raise coder.CodingError(f"wrong dataset: the file holds labels of {want['name']!r}, not "
                                     f"{args.dataset!r}; decode with --dataset {want['name']}")
        inputs = data.load(args.dataset, want["split"], root=args.data_root, n=want["n"], seed=want["order_seed"])
        dec = bytes_code.decode(raw, inputs, progress=not args.no_progress)
        if args.out:
            np.save(args.out, dec.labels)
    except (ValueError, RuntimeError, OSError, KeyError) as e:  # CodingError, DataUnavailableError, ...
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    n = want["n"]
    print(f"decoded {n:,} labels of {want['name']} ({want['split']}, K={want['K']}) with the {header['code']} code")
    print(f"file: {len(raw):,} bytes ({8 * len(raw) / n:.4f} bits/label); labels SHA-256 {header['labels_sha256']} OK")
    print(f"decode time: {dec.seconds:.2f} s ({header['num_threads']} torch thread(s))")
    if args.out:
        print(f"labels saved to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
