"""Benchmark: what averaging costs by itself, apart from the machine's load (issue 24's ingredients).

    python benchmarks/bench_averaging.py [--repeats 30]

For each network of the named recipes, in this process (portable numerics unless MDL_NUMERICS=native), one torch
thread: milliseconds of an optimizer step of one mini-batch (128) and of folding the weights into their moving
average (training.WeightAverage, Recipe.ema); milliseconds to predict 1,000 inputs from the network alone and
averaged over test-time views (mdl_utils.tta: each view is one more prediction). An ensemble of m members costs m
times a chain (its members train and predict one after the other). No thresholds: the numbers are for reading;
the machine, its load and the commit are printed with them.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from mdl_utils import numerics, tta  # noqa: E402
from mdl_utils.formats import markdown  # noqa: E402
from mdl_utils.models import build, num_parameters  # noqa: E402
from mdl_utils.results import git_commit  # noqa: E402
from mdl_utils.training import WeightAverage, predict_logits, torch_threads  # noqa: E402

NETWORKS = {"mlp": (1, 28, 28), "cnn4": (1, 28, 28), "vgg6": (3, 32, 32)}


def ms(f, repeats: int) -> float:
    """Median milliseconds of ``f()`` over ``repeats`` calls, after one warm-up call."""
    f()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return 1000 * sorted(times)[len(times) // 2]


def row(name: str, shape: tuple[int, ...], repeats: int) -> list:
    g = torch.Generator().manual_seed(0)
    net = build(name, shape, 10, seed=0)
    x, y = torch.rand(128, *shape, generator=g), torch.randint(0, 10, (128,), generator=g)
    opt, average = torch.optim.Adam(net.parameters(), lr=1e-3), WeightAverage(net, 0.99)

    def step():
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    test = torch.rand(1000, *shape, generator=g)
    predict = {v: ms(lambda v=v: predict_logits(tta.predictor(net, v), test, "cpu"), max(3, repeats // 10))
               for v in ("none", "flip", "shift1")}
    net.train()
    step_ms, average_ms = ms(step, repeats), ms(lambda: average.update(net), repeats)
    return [name, f"{num_parameters(net):,}", f"{step_ms:.2f}", f"{average_ms:.3f}", f"{average_ms / step_ms:.2%}",
            f"{predict['none']:.1f}", f"{predict['flip']:.1f}", f"{predict['shift1']:.1f}"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--networks", default=",".join(NETWORKS))
    args = ap.parse_args()
    with torch_threads(1):
        rows = [row(n, NETWORKS[n], args.repeats) for n in args.networks.split(",")]
    commit = (git_commit()[0] or "unknown")[:7]
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}, numerics {numerics.state()['mode']}, one torch thread, commit {commit}")
    print(markdown(["network", "parameters", "step ms", "EMA update ms", "EMA / step", "predict 1,000 ms",
                    "flip views ms", "shift1 views ms"], rows,
                   "Median of repeated calls; a step is one Adam step on 128 inputs (forward, backward, update)."))


if __name__ == "__main__":
    main()
