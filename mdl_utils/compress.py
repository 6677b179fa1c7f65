"""Alice: ``python -m mdl_utils.compress --code prequential --dataset mnist --model mlp --scale cpu labels.mdl``

Writes the training labels of a dataset (all of them, in the agreed
transmission order, unless --n says fewer) into a file with one of the book's
codes (mdl_utils.codes.bytes), with the settings of that code's chapter at
--scale, and prints how many labels it encodes, the computed codelength, the
file size and the time. Exits non-zero with a one-line error on any problem.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import coder, data
from .codes import bytes as bytes_code
from .scales import SCALES, check_scale


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m mdl_utils.compress", description=__doc__.split("\n\n")[1])
    ap.add_argument("output", help="the labels file to write, e.g. labels.mdl")
    ap.add_argument("--code", required=True, choices=bytes_code.CODES)
    ap.add_argument("--dataset", required=True, help="mnist, cifar10, synthetic or folder:<path>")
    ap.add_argument("--model", default=None, help="the model of the prequential / two_part code, e.g. mlp")
    ap.add_argument("--scale", required=True, choices=SCALES,
                    help="whose settings (epochs, patience, ...) the code uses: the chapters' at this scale")
    ap.add_argument("--n", type=int, default=None, help="send only the first n labels (default: all of the split)")
    ap.add_argument("--seed", type=int, default=0, help="transmission order and training seed (default 0)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads; Bob uses the same (default 1)")
    ap.add_argument("--data-root", default=None, help="data folder (default: MDL_DATA)")
    ap.add_argument("--no-progress", action="store_true")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        check_scale(args.scale)
        train = data.load(args.dataset, "train", root=args.data_root, n=args.n, seed=args.seed)
        code = bytes_code.code_for(args.code, train.name, train.n, train.K, args.model, args.scale, args.seed)
        print(f"encoding {train.n:,} labels of {train.name} (train split, order seed {args.seed}) with the "
              f"{args.code} code at scale={args.scale}")
        enc = bytes_code.encode(train, code, num_threads=args.threads, progress=not args.no_progress)
        coder.write(args.output, enc.data)
    except (ValueError, RuntimeError, OSError) as e:  # CodingError, DataUnavailableError, bad arguments
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    print(f"wrote {Path(args.output)}")
    print(bytes_code.summary(enc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
