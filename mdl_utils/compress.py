"""Alice: ``python -m mdl_utils.compress --code prequential --dataset mnist --model mlp --scale cpu labels.mdl``

Writes the training labels of a dataset (all of them, in the agreed
transmission order, unless --n says fewer) into a file with one of the book's
codes (mdl_utils.codes.bytes), with the settings of that code's chapter at
--scale, and prints how many labels it encodes, the computed codelength, the
file size and the time. Portable numerics by default: the file decodes on any
x86-64 CPU with AVX2 of the encoder's vendor (mdl_utils.numerics); --fast-numerics trades that for this
CPU's own kernels. The output path is checked before any work; the file is
written at the end, atomically. Exits non-zero with a one-line error on any
problem, and with one line on Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import coder, data, numerics
from .codes import files
from .results import check_writable
from .scales import SCALES, check_scale

INTERRUPTED = "interrupted; nothing was stored"


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m mdl_utils.compress", description=__doc__.split("\n\n")[1])
    ap.add_argument("output", help="the labels file to write, e.g. labels.mdl")
    ap.add_argument("--code", required=True, choices=files.CODES)
    ap.add_argument("--dataset", required=True, help="mnist, cifar10, synthetic, folder:<path>, npz:<path> or a registered dataset (MDL_PLUGINS)")
    ap.add_argument("--model", default=None, help="the model (a run of the prequential chapter) of the prequential, "
                                                  "two_part or self_switch code, e.g. mlp, mlp_warm; the switch "
                                                  "code's models, e.g. mlp-small_cnn")
    ap.add_argument("--scale", required=True, choices=SCALES,
                    help="whose settings (epochs, patience, ...) the code uses: the chapters' at this scale")
    ap.add_argument("--n", type=int, default=None, help="send only the first n labels (default: all of the split)")
    ap.add_argument("--seed", type=int, default=0, help="transmission order and training seed (default 0)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads; Bob uses the same (default 1)")
    ap.add_argument("--parallel", action="store_true", help="one process per prequential chain (switch code)")
    ap.add_argument("--describe", action="store_true", help="a self-describing file: the full settings, versions and "
                                                            "inputs in the header (compressed JSON, ~400 bytes)")
    numerics.add_option(ap)
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                    help="where the models train (cuda: the file decodes only on the same kind of GPU and software)")
    ap.add_argument("--data-root", default=None, help="data folder (default: MDL_DATA)")
    ap.add_argument("--force", action="store_true", help="overwrite the output file if it exists")
    ap.add_argument("--no-progress", action="store_true")
    return ap


def labels_to_send(dataset: str, n: int | None, seed: int, root: str | None) -> tuple[data.Dataset, str]:
    """The training split of ``dataset`` in its transmission order, all of it or its first ``n`` (never more than
    it has: a larger --n is an error naming the split's size), and words saying which."""
    train = data.load(dataset, "train", root=root, seed=seed)
    if n is None:
        return train, f"all of the train split, order seed {seed}"
    if n < 1 or n > train.n:
        raise ValueError(f"--n {n}: {dataset} has {train.n:,} training samples; pass --n from 1 to {train.n}, or "
                         f"leave --n out to send all of them")
    return train.head(n), f"the first {n:,} of the {train.n:,} of the train split, order seed {seed}"


def check_counts(seed: int, threads: int) -> None:
    """--seed must be 0..data.MAX_SEED (the file stores seed + 1, 0 meaning no shuffle) and --threads >= 1."""
    if not 0 <= seed <= data.MAX_SEED or threads < 1:
        raise ValueError(f"--seed {seed} --threads {threads}: the order seed must be 0 to {data.MAX_SEED:,} and the "
                         f"thread count 1 or more")


FLOOR_NOTE = ("; the payload is shorter than the computed codelength because the coder gives every class at least "
              "2^-24: a label the model deemed less likely than that costs at most 24 bits in the file")


def _where_it_decodes(env: dict) -> str:
    """Where a file written in ``env`` decodes (with the same versions and thread count)."""
    if env.get("numerics") == "portable":
        return f"on any {numerics.vendor_words(env)} x86-64 CPU with AVX2"
    return {"native": "only on this kind of CPU, with native numerics",
            "cuda": "only on this kind of GPU, with the same CUDA and cuDNN"}.get(env.get("numerics"), "?")


def summary(enc: files.Encoded) -> str:
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
        f"numerics: {numerics.describe(d['environment'])}; the file decodes {_where_it_decodes(d['environment'])}",
        f"encode time: {enc.seconds:.2f} s ({d['environment']['num_threads']} torch thread(s))",
    ])


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.fast_numerics:
            numerics.use("native")  # before anything computes
        check_scale(args.scale)
        check_counts(args.seed, args.threads)
        check_writable(args.output)
        if Path(args.output).exists() and not args.force:
            raise ValueError(f"{args.output} exists; give another name, or --force to overwrite it")
        train, which = labels_to_send(args.dataset, args.n, args.seed, args.data_root)
        code = files.code_for(args.code, train.name, train.n, train.K, args.model, args.scale, args.seed)
        print(f"encoding {train.n:,} labels of {train.name} ({which}) with the {args.code} code at "
              f"scale={args.scale}")
        enc = files.encode(train, code, num_threads=args.threads, describe=args.describe,
                                parallel=args.parallel, progress=not args.no_progress, device=args.device)
        coder.write(args.output, enc.data)
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130
    except (ValueError, RuntimeError, OSError) as e:  # CodingError, NumericsError, DataUnavailableError, arguments
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    print(f"wrote {Path(args.output)}")
    print(summary(enc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
