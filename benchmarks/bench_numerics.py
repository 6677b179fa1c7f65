"""Benchmark: what portable numerics cost (mdl_utils.numerics), per named recipe.

    MDL_DATA=../shared/data python benchmarks/bench_numerics.py [--n 512] [--runs mlp_warm,cnn4_warm,vgg6_warm]

For each run, the prequential chain of its cpu-scale recipe on the first ``--n`` training samples (the real code
path, blocks t_1 .. n), in a fresh process per setting (numerics are fixed when torch first computes): portable
against native numerics, in float32 and under bfloat16 autocast. Prints seconds per trained block and the
optimizer's milliseconds per step of each setting, the portable/native ratio, and which precision to train in
under portable numerics. Portable bfloat16 is timed on optimizer steps only (``--bf16-steps``): its blocks take
minutes. No thresholds: the numbers are for reading; the machine, its load and the commit are printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mdl_utils import numerics  # noqa: E402
from mdl_utils.results import git_commit  # noqa: E402
from mdl_utils.formats import markdown  # noqa: E402

DATASET = {"mlp_warm": "mnist", "cnn4_warm": "mnist", "vgg6_warm": "cifar10", "mlp": "mnist", "small_cnn": "mnist"}

CHILD = """
import dataclasses, json, sys, time
import mdl_utils, torch
from mdl_utils import data, numerics
from mdl_utils.codes import prequential as P
from mdl_utils.training import torch_threads
run, dataset, n, bf16, steps_only = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1", int(sys.argv[5])
train = data.load(dataset, "train", n=n, seed=0)
recipe = dataclasses.replace(P.settings("cpu").recipe(dataset, run, n), bf16=bf16, record_epochs=False)
out = {"mode": numerics.state()["mode"]}
with torch_threads(1):
    if steps_only:
        chain = P.Chain(train.x, train.K, recipe, "cpu")
        net = chain.new_model()
        opt = torch.optim.Adam(net.parameters(), lr=recipe.lr)
        xb, yb = chain.x[:recipe.batch_size], train.y[:recipe.batch_size]
        for i in range(steps_only + 2):
            if i == 2:
                t0 = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = torch.nn.functional.cross_entropy(net(xb), yb)
            opt.zero_grad(); loss.backward(); opt.step()
        out["ms_per_step"] = 1000 * (time.perf_counter() - t0) / steps_only
    else:
        chain, blocks, steps = P.Chain(train.x, train.K, recipe, "cpu"), [], 0
        for t, t_next in zip(recipe.timesteps[:-1], recipe.timesteps[1:]):
            t0 = time.perf_counter()
            fitted = chain.train(train.y[:t])
            chain.logits(t, t_next)
            if fitted.steps_run:
                blocks.append(time.perf_counter() - t0)
                steps += fitted.steps_run
        out.update(block_seconds=sum(blocks) / max(len(blocks), 1), blocks=len(blocks),
                   ms_per_step=1000 * sum(blocks) / max(steps, 1))
print(json.dumps(out))
"""


def measure(run: str, mode: str, bf16: bool, n: int, steps_only: int = 0) -> dict:
    """One setting in a fresh process (MDL_NUMERICS=mode)."""
    env = {k: v for k, v in os.environ.items() if k not in numerics.PORTABLE_ENV}
    env.update({numerics.ENV: mode, "PYTHONPATH": str(ROOT)})
    proc = subprocess.run([sys.executable, "-c", CHILD, run, DATASET[run], str(n), str(int(bf16)), str(steps_only)],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode:
        raise SystemExit(f"{run} {mode} {'bf16' if bf16 else 'fp32'} failed:\n{proc.stderr[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["mode"] == mode, out
    return out


def row(run: str, n: int, bf16_steps: int) -> list[str]:
    """Seconds per trained block and ms per optimizer step of each setting, the ratio and the advice."""
    portable, native = measure(run, "portable", False, n), measure(run, "native", False, n)
    native16 = measure(run, "native", True, n)
    step16 = measure(run, "portable", True, n, bf16_steps)
    step32 = measure(run, "portable", False, n, bf16_steps)
    advice = "fp32" if step32["ms_per_step"] <= step16["ms_per_step"] else "bf16"
    return [run, str(portable["blocks"]), f"{portable['block_seconds']:.2f}", f"{native['block_seconds']:.2f}",
            f"{native16['block_seconds']:.2f}", f"{portable['block_seconds'] / native['block_seconds']:.2f}",
            f"{step32['ms_per_step']:.0f}", f"{step16['ms_per_step']:.0f}", advice]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", default="mlp_warm,cnn4_warm,vgg6_warm")
    ap.add_argument("--n", type=int, default=512, help="samples: the chain's blocks t_1 .. n")
    ap.add_argument("--bf16-steps", type=int, default=20, help="optimizer steps timed for portable bfloat16")
    args = ap.parse_args()
    cpu = numerics.cpu_identity()
    commit, dirty = git_commit()
    print(f"portable vs native numerics, cpu-scale recipes on the first {args.n} samples, one torch thread; "
          f"{cpu['vendor']} {cpu['model']} ({cpu['isa']}, {os.cpu_count()} cores), commit "
          f"{(commit or '?')[:7]}{' (dirty)' if dirty else ''}")
    header = ["run", "trained blocks", "portable fp32 s/block", "native fp32 s/block", "native bf16 s/block",
              "portable / native fp32", "portable fp32 ms/step", "portable bf16 ms/step", "train in (portable)"]
    print(markdown(header, [row(r, args.n, args.bf16_steps) for r in args.runs.split(",")]))


if __name__ == "__main__":
    main()
