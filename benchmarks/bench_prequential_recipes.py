"""Benchmark: named prequential runs (the paper's Algorithm 2 and our recipes) side by side, against the targets.

    MDL_DATA=../shared/data python benchmarks/bench_prequential_recipes.py [--dataset mnist] [--runs mlp,mlp_warm]
    MDL_DATA=../shared/data python benchmarks/bench_prequential_recipes.py --stored --dataset cifar10

Computes each run (one torch thread at cpu scale; nothing is stored), or with ``--stored`` reads the stored
results, and prints per block the bits per sample, optimizer steps and seconds of every run, then the totals
with the issue's targets (kbits and wall seconds on a 2-core CPU; CPU s: processor seconds of the blocks, less
sensitive to other jobs on the machine). No thresholds: the numbers are for reading.
"""

from __future__ import annotations

import argparse
import time

from mdl_utils import chapters, data, results
from mdl_utils.codes import prequential as P
from mdl_utils.formats import markdown
from mdl_utils.tables import prequential_block_rows, prequential_recipe_words
from mdl_utils.training import torch_threads

# (dataset, which runs) -> (kbits, seconds) to reach on a 2-core CPU with one torch thread (issue 16 for the mlp,
# issue 24 for the best runs: the paper's GPU prequential code on CIFAR-10)
TARGETS = {("mnist", "mlp"): (12.5, 60), ("mnist", "best"): (3.0, 10 * 60), ("cifar10", "best"): (45.0, 30 * 60)}


def compute(dataset: str, run: str, scale: str) -> tuple[results.CodeResult, float]:
    """The prequential code of ``run`` (not stored) and its wall seconds."""
    s = P.settings(scale)
    train = data.load(dataset, "train", n=s.n_train)
    test = data.load(dataset, "test", n=s.n_test)
    t0 = time.perf_counter()
    with torch_threads(s.num_threads):
        r = P.prequential_code(train, test, s.recipe(dataset, run, train.n), scale=scale, device="cpu",
                               progress=False, name=run)
    return r, time.perf_counter() - t0


def target(dataset: str, r: results.CodeResult) -> str:
    """The issue's target for a run: the MNIST mlp's for mlp runs, else the dataset's best."""
    kb, sec = TARGETS.get((dataset, r.params["model"]), TARGETS.get((dataset, "best"), (None, None)))
    return "" if kb is None else f"<= {kb} kbits in <= {sec:,} s"


def main() -> None:
    """Compute (or read) the runs and print the per-block table and the totals against the targets."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--runs", default=None, help="comma-separated run names (default: mlp,mlp_warm; with --stored: "
                                                 "the scale's runs of the dataset)")
    ap.add_argument("--scale", default="cpu")
    ap.add_argument("--stored", action="store_true", help="read the stored results instead of computing")
    args = ap.parse_args()
    if args.stored:
        names = args.runs.split(",") if args.runs else [m for _, m in chapters.runs("prequential", args.dataset, args.scale)]
        found = [chapters.get("prequential", args.dataset, m, args.scale) for m in names]
        timed = [(r, r.provenance["wall_seconds"]) for r in found if r is not None]
    else:
        timed = [compute(args.dataset, m, args.scale) for m in (args.runs or "mlp,mlp_warm").split(",")]
    runs = [r for r, _ in timed]
    header, rows = prequential_block_rows(runs)
    print(f"prequential codes of {args.dataset} at {args.scale} scale, per block (bits/sample, steps, seconds)")
    print(markdown(header, rows))
    print()
    print(markdown(["run", "recipe", "kbits", "wall s", "CPU s", "target"], [
        [r.model, prequential_recipe_words(r.params), f"{r.kbits:.2f}", f"{sec:.1f}",
         f"{r.provenance.get('cpu_seconds', float('nan')):.1f}", target(args.dataset, r)] for r, sec in timed]))


if __name__ == "__main__":
    main()
