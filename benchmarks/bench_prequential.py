"""Benchmark: the prequential code of MNIST with the `mlp` (cpu-scale settings) against a bare loop.

    MDL_DATA=../shared/data python benchmarks/bench_prequential.py [--model mlp] [--dataset mnist]

Prints, per block, the wall time and training throughput of the prequential code
(early stopping, calibration, per-epoch records for self-switch) and of a bare
Adam loop that runs the same number of epochs on the same samples (no
validation, no encoding); then the totals and their ratio. No thresholds: the
numbers are for reading.
"""

from __future__ import annotations

import argparse
import time

import torch

import dataclasses

from mdl_utils import data, models, training
from mdl_utils.codes import prequential as P
from mdl_utils.formats import markdown


def bare_loop(model_name, x, y, epochs, batch_size, lr, seed) -> float:
    """Seconds for a plain Adam loop over the same training samples and epochs."""
    net = models.build(model_name, tuple(x.shape[1:]), 10, seed=seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=g)
        for i in range(0, len(y), batch_size):
            idx = order[i:i + batch_size]
            loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--model", default="mlp")
    ap.add_argument("--scale", default="cpu")
    args = ap.parse_args()
    cfg = P.settings(args.scale)
    train = data.load(args.dataset, "train", n=cfg.n_train)
    test = data.load(args.dataset, "test", n=cfg.n_test)
    recipe = cfg.recipe(args.dataset, args.model, train.n)
    runs = {}
    for record in (True, False):
        t0 = time.perf_counter()
        with training.torch_threads(cfg.num_threads):
            result = P.prequential_code(train, test, dataclasses.replace(recipe, record_epochs=record),
                                        scale=args.scale, device="cpu", progress=False)
        runs[record] = (result, time.perf_counter() - t0)
    result, total = runs[True]
    c = result.curves
    rows, bare_total = [], 0.0
    for t_s, t_e, ran, trained, sec in zip(c["t_start"], c["t_end"], c["epochs_run"], c["samples_trained"],
                                           c["block_seconds"]):
        n_train = t_s - training.validation_size(t_s, recipe.val_fraction)
        with training.torch_threads(cfg.num_threads):
            bare = bare_loop(args.model, train.x[:n_train], train.y[:n_train], ran, recipe.batch_size, recipe.lr, 0)
        bare_total += bare
        rows.append([f"{t_s:,}", f"{t_e - t_s:,}", ran, f"{trained:,}", f"{sec:.2f}", f"{trained / sec:,.0f}",
                     f"{bare:.2f}", f"{sec / bare:.2f}" if bare > 0 else ""])
    print(f"prequential {args.dataset}/{args.model} at {args.scale} scale, n = {train.n:,}, "
          f"{len(rows)} blocks, {torch.get_num_threads()} threads")
    print(markdown(["t_s", "block", "epochs", "samples trained", "block s", "samples/s", "bare loop s", "ratio"], rows))
    print()
    print(markdown(["run", "wall s", "codelength kbits"], [
        ["prequential, with per-epoch records (self-switch)", f"{total:.1f}", f"{result.kbits:.2f}"],
        ["prequential, without per-epoch records", f"{runs[False][1]:.1f}", f"{runs[False][0].kbits:.2f}"],
        ["bare training loop, same epochs", f"{bare_total:.1f}", ""],
        ["ratio prequential (no records) / bare", f"{runs[False][1] / bare_total:.2f}", ""],
    ]))


if __name__ == "__main__":
    main()
