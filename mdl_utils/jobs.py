"""Jobs: the book's runs as (chapter, dataset, model, seed, scale) jobs, planned against a budget and run.

    python -m mdl_utils.jobs plan --scale paper                   # the jobs in priority order with their planned work
    python -m mdl_utils.jobs run --scale paper --only mnist/prequential --workers 2 --budget 200 --out DIR
    python -m mdl_utils.jobs run --scale paper --executor slurm --partition gpu --gpus 1 --time 120

A job calls its chapter's ``compute()`` and stores the result under ``--out`` (a results store; default the
project's results/) as soon as it finishes; a job whose result is already there is not run again (resume), and a
job that was stopped resumes after its last finished unit (a prequential block: its checkpoint in
``<out>/prequential/.partial/``). Priority: the chapters' order in the registry (mdl_utils.codes: the prequential
runs that Table 2's switch codes need, largest models first, then the switch codes, then the variational code and
the two-part family); a chapter whose runs train nothing (the switch codes) runs in the main process once the runs
it needs are stored. Everything the runner knows of a chapter comes from the registry's hooks: it names none.

Planned work of a job: samples x max epochs summed over its trainings (prequential: t_s samples for block s, for
every block), so an upper bound: early stopping ends most blocks sooner. With ``--budget SECONDS`` a job is started
only when its remaining planned work / throughput fits in the time left (``--partial`` starts it anyway); the
throughput (planned-work samples per second of the model's prequential block, evaluation included) comes from a
short probe on random inputs, or from ``--throughput``. A job still running at the deadline is terminated and
keeps its checkpoint. docs/PAPER_SCALE.md runs the paper scale on a GPU (scripts/gpu_paper.sh) and on Slurm.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence


from . import codes, data, numerics, results, scales
from .joblist import DATASETS, JobError, make_jobs, parse_throughput, plan_rows, plan_table
from .runner import STATE_DIR, LocalRunner, RunOptions, SlurmOptions, _say, run_slurm, run_table
from .training import resolve_device







# ------------------------------------------------------------------ the job list








# ------------------------------------------------------------------ planned work








# ------------------------------------------------------------------ throughput






# ------------------------------------------------------------------ one job












# ------------------------------------------------------------------ worker processes
















# ------------------------------------------------------------------ the local runner






# ------------------------------------------------------------------ Slurm (submitit)






# ------------------------------------------------------------------ tables and the CLI












def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m mdl_utils.jobs", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, text in (("plan", "list the jobs in priority order with their planned work"),
                       ("run", "run the jobs (skipping those whose results are stored)")):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("--scale", default="paper", choices=scales.SCALES)
        p.add_argument("--datasets", nargs="+", default=list(DATASETS), metavar="NAME")
        p.add_argument("--chapters", nargs="+", default=list(codes.core_chapters()),
                       choices=[c.name for c in codes.CHAPTERS], metavar="CHAPTER",
                       help=f"default: {' '.join(codes.core_chapters())}")
        p.add_argument("--only", nargs="+", default=[], metavar="PATTERN",
                       help="DATASET[/CHAPTER[/MODEL]] filters with wildcards, e.g. mnist/prequential cifar10")
        p.add_argument("--seeds", nargs="+", type=int, default=[0])
        p.add_argument("--throughput", nargs="+", default=[], metavar="[MODEL=]SAMPLES_PER_S")
        p.add_argument("--out", type=Path, default=None, help="results store (default: MDL_RESULTS, else results/)")
        p.add_argument("--data-root", default=None, help="data folder (default: MDL_DATA)")
        p.add_argument("--cap-samples", type=int, default=None, help="dry run: first N samples (prequential only)")
        p.add_argument("--cap-epochs", type=int, default=None, help="dry run: at most E epochs per block")
    run = sub.choices["run"]
    run.add_argument("--workers", type=int, default=1, help="concurrent worker processes (one GPU is shared)")
    run.add_argument("--threads", type=int, default=None, help="torch threads per worker (default: cores / workers)")
    run.add_argument("--budget", type=float, default=None, metavar="SECONDS")
    run.add_argument("--partial", action="store_true",
                     help="start jobs whose planned work exceeds the time left (the deadline stops them; "
                          "their checkpoints keep the finished blocks)")
    run.add_argument("--probe-seconds", type=float, default=1.0)
    run.add_argument("--device", default="auto")
    numerics.add_option(run)
    run.add_argument("--executor", choices=("local", "slurm"), default="local")
    run.add_argument("--partition", default=None)
    run.add_argument("--gpus", type=int, default=1, help="GPUs per Slurm task")
    run.add_argument("--cpus", type=int, default=8, help="CPUs per Slurm task")
    run.add_argument("--time", type=int, default=120, help="minutes per Slurm task")
    run.add_argument("--slurm-cluster", default="slurm", choices=("slurm", "local"),
                     help="'local': submitit's local executor (no cluster; for tests)")
    return ap


def check_counts(args) -> None:
    """Refuse, before any job starts, counts a worker would only fail on: --workers, --threads, --cap-samples and
    --cap-epochs below 1, negative or repeated --seeds."""
    for name in ("workers", "threads", "cap_samples", "cap_epochs"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise JobError(f"--{name.replace('_', '-')} {value}: give a whole number of 1 or more")
    seeds = list(args.seeds)
    if any(not 0 <= s <= data.MAX_SEED for s in seeds) or len(set(seeds)) != len(seeds):
        raise JobError(f"--seeds {' '.join(map(str, seeds))}: give each seed once, as a number from 0 to "
                       f"{data.MAX_SEED:,}")


def main(argv: Sequence[str] | None = None) -> int:
    """The CLI; 0 when no job failed."""
    args = _parser().parse_args(argv)
    try:
        check_counts(args)
        out = (args.out or results.results_root()).resolve()
        jobs = make_jobs(args.scale, args.datasets, args.chapters, args.seeds, args.only, args.cap_samples,
                         args.cap_epochs)
        if not jobs:
            raise JobError(f"no job matches --only {' '.join(args.only)}; patterns are DATASET[/CHAPTER[/MODEL]]")
        rates = parse_throughput(args.throughput)
        if args.command == "plan":
            print(plan_table(plan_rows(jobs, args.data_root, out, rates)))
            return 0
        resolve_device(args.device)  # no CUDA where cuda was asked for: say so before starting anything
        results.check_store(out)
        if args.fast_numerics:
            numerics.use("native")  # before anything computes; workers inherit MDL_NUMERICS=native
        if args.executor == "slurm" and args.budget is not None:
            raise JobError("--budget applies to the local executor; a Slurm task is limited by --time MINUTES")
        opts = RunOptions(out=out, device=args.device, data_root=args.data_root, workers=max(1, args.workers),
                          threads=args.threads or max(1, (os.cpu_count() or 1) // max(1, args.workers)),
                          budget=args.budget, throughput=rates, partial=args.partial, probe_seconds=args.probe_seconds)
        _say(f"{len(jobs)} jobs, results in {out}, device {args.device}, {opts.workers} workers"
             + (f", budget {args.budget:g} s" if args.budget is not None else ""))
        rows = (run_slurm(jobs, opts, SlurmOptions(args.partition, args.gpus, args.cpus, args.time, args.slurm_cluster))
                if args.executor == "slurm" else LocalRunner(jobs, opts).run())
    except (ValueError, RuntimeError, OSError) as e:  # JobError, DataUnavailableError, ResultFileError
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    table = run_table(rows)
    print(table)
    results.write_json_atomic(out / STATE_DIR / "last_run.json", rows)
    return 1 if any(r["status"].startswith("failed") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
