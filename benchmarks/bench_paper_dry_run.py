"""Benchmark: every paper-scale prequential job as a dry run on the CPU (a tiny sample cap, one epoch per block).

    MDL_DATA=../shared/data OMP_NUM_THREADS=1 python benchmarks/bench_paper_dry_run.py [--cap 256] [--epochs 1]

Runs ``python -m mdl_utils.jobs run --scale paper --chapters prequential --cap-samples CAP --cap-epochs EPOCHS``
into a temporary results store (the override is stated in each result's params and note, and such a result never
counts as the paper one), checks that each paper model trained, encoded every label and wrote its result, then
prints the plan of the full paper scale and the measured CPU throughput per model: the dry run's samples trained
per second of block (small blocks: evaluation dominates) and the probe's planned-work samples per second (one
prequential block of random inputs, evaluation included: the number --budget divides by). No thresholds.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from mdl_utils import data, joblist, jobs, results, runner
from mdl_utils.formats import markdown
from mdl_utils.training import torch_threads


def check(job: joblist.Job, out: Path) -> str:
    """'ok' when the dry run's result is stored with its override, its per-sample bits and a finite codelength."""
    r = results.load_file(job.result_file(out))
    bits = results.load_array("prequential", r, "bits", out)
    assert r.params["override"] == job.override, r.params.get("override")
    assert len(bits) == r.n == min(job.cap_samples, data.info(job.dataset).n_train), (len(bits), r.n)
    assert abs(float(bits.astype("float64").sum()) - r.codelength_bits) < 1e-3 * r.n
    return "ok"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cap", type=int, default=256, help="samples per job (default 256)")
    ap.add_argument("--epochs", type=int, default=1, help="epochs per block (default 1)")
    ap.add_argument("--probe-seconds", type=float, default=1.0)
    ap.add_argument("--out", type=Path, default=None, help="results store (default: a temporary folder)")
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="paper-dry-run-"))
    paper = joblist.make_jobs("paper", chapter_names=("prequential",))
    print("Plan of the paper-scale prequential jobs (Table 2's runs):\n")
    print(joblist.plan_table(joblist.plan_rows(paper)))
    print(f"\nDry run: first {args.cap} samples, at most {args.epochs} epoch(s) per block, CPU, 1 thread, into {out}\n")
    code = jobs.main(["run", "--scale", "paper", "--chapters", "prequential", "--cap-samples", str(args.cap),
                      "--cap-epochs", str(args.epochs), "--out", str(out), "--device", "cpu", "--threads", "1"])
    if code:
        raise SystemExit(f"the dry run failed (exit {code}); see the table above and the logs in {out}/.jobs")
    rows = []
    for job, row in zip(joblist.make_jobs("paper", chapter_names=("prequential",), cap_samples=args.cap,
                                       cap_epochs=args.epochs), joblist.plan_rows(paper)):
        stored = results.load_file(job.result_file(out))
        with torch_threads(1):
            rate = joblist.probe_throughput(joblist.Job("prequential", job.dataset, job.model, scale="paper"), "cpu",
                                         min_seconds=args.probe_seconds)
        rows.append([job.name, check(job, out), f"{stored.provenance['wall_seconds']:.1f}", f"{stored.kbits:.2f}",
                     f"{runner.samples_per_second(stored):,.0f}", f"{rate:,.0f}", f"{row['work'] / rate / 3600:,.1f}"])
    print(f"\nCPU throughput per model ({torch.get_num_threads()} thread(s) in the probe process):\n")
    print(markdown(["job", "result", "dry-run s", "kbits", "trained samples/s (dry run)", "probe samples/s",
                    "paper planned work at probe rate, CPU h"], rows))


if __name__ == "__main__":
    main()
