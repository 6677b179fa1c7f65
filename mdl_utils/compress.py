"""Alice: ``python -m mdl_utils.compress --code prequential --dataset mnist --model mlp --scale smoke labels.mdl``

Writes the training labels of a dataset (in the agreed transmission order) into
a file with one of the book's codes (mdl_utils.coding) and prints the computed
codelength, the file size and the time. Exits non-zero on any error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from . import coding
    from .scales import SCALES, check_scale

    ap = argparse.ArgumentParser(prog="python -m mdl_utils.compress", description=__doc__.split("\n\n")[1])
    ap.add_argument("output", help="the labels file to write, e.g. labels.mdl")
    ap.add_argument("--code", required=True, choices=coding.CODES)
    ap.add_argument("--dataset", required=True, help="mnist, cifar10, synthetic or folder:<path>")
    ap.add_argument("--model", default=None, help="the model of the prequential / two_part code, e.g. mlp")
    ap.add_argument("--scale", default="smoke", help=f"settings of the code: one of {', '.join(SCALES)}")
    ap.add_argument("--n", type=int, default=None, help="send the first n labels (default: the scale's n_train)")
    ap.add_argument("--seed", type=int, default=0, help="transmission order and training seed (default 0)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads; Bob uses the same (default 1)")
    ap.add_argument("--data-root", default=None, help="data folder (default: MDL_DATA)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    try:
        from . import data

        check_scale(args.scale)
        n = args.n if args.n is not None else coding.n_train_for(args.code, args.scale)
        train = data.load(args.dataset, "train", root=args.data_root, n=n, seed=args.seed)
        settings = coding.settings_for(args.code, train.name, train.n, args.model, args.scale, seed=args.seed)
        enc = coding.encode(train, args.code, settings, num_threads=args.threads, progress=not args.no_progress)
        coding.write(args.output, enc.data)
    except (ValueError, RuntimeError, OSError) as e:  # CodingError, DataUnavailableError, bad arguments
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    print(f"wrote {Path(args.output)}")
    print(coding.summary(enc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
