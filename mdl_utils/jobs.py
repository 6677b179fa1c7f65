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
import dataclasses
import fnmatch
import json
import multiprocessing
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode

from . import checkpoint, codes, data, models, numerics, results, scales
from .formats import markdown
from .training import resolve_device, torch_threads

DATASETS = ("mnist", "cifar10")
TRAIN_FLOPS_PER_FORWARD = 3  # forward + backward ~ 3 forward passes (the usual rule of thumb)
STATE_DIR = ".jobs"  # under --out: per-job status and stderr logs, the Slurm folder, the last run's table


class JobError(ValueError):
    """A job list or a run cannot be done as asked."""


@dataclasses.dataclass(frozen=True)
class Job:
    """One run: ``chapter``'s compute(dataset, model, scale, seed=seed). ``cap_samples``/``cap_epochs``: a dry run of
    a prequential job on the first ``cap_samples`` samples with at most ``cap_epochs`` epochs (stated in its result)."""

    chapter: str
    dataset: str
    model: str
    seed: int = 0
    scale: str = "paper"
    cap_samples: int | None = None
    cap_epochs: int | None = None

    @property
    def name(self) -> str:
        """DATASET/CHAPTER/MODEL[/seedS], as --only matches it."""
        return f"{self.dataset}/{self.chapter}/{self.model}" + (f"/seed{self.seed}" if self.seed else "")

    @property
    def caps(self) -> dict | None:
        """A dry run's caps ("samples", "epochs"), None for a real run."""
        if self.cap_samples is None and self.cap_epochs is None:
            return None
        return {"samples": self.cap_samples, "epochs": self.cap_epochs}

    @property
    def override(self) -> dict | None:
        """The dry-run override stored in the result's params (None for a real run)."""
        return None if self.caps is None else {"cap_samples": self.cap_samples, "cap_epochs": self.cap_epochs}

    def result_file(self, root: Path) -> Path:
        """Where the job's result is stored in the results store ``root``."""
        return results.result_path(self.chapter, self.dataset, self.model, self.scale, Path(root),
                                   code=codes.code_of(self.chapter, self.model), seed=self.seed)

    def checkpoint_file(self, root: Path) -> Path | None:
        """Where the job keeps its finished units in the store ``root`` (None: a dry run, or a chapter without)."""
        if self.override:
            return None
        return codes.checkpoint_path(self.chapter, self.dataset, self.model, self.scale, self.seed, Path(root))

    def needs(self) -> list["Job"]:
        """The jobs whose stored results this job reads (the registry's hook; none for most chapters)."""
        return [Job(c, d, m, self.seed, self.scale) for c, d, m in codes.needs(self.chapter, self.dataset, self.model,
                                                                                self.scale)]

    def option(self, **options) -> dict:
        """The keyword arguments of a registry hook for this job: its seed, its caps and ``options``."""
        return {"seed": self.seed, "caps": self.caps, **options}


# ------------------------------------------------------------------ the job list


def _rank(chapter: str) -> tuple[int, int]:
    """A chapter's place in the job order: the registry's job rank, then the other chapters in book order."""
    c = codes.chapter(chapter)
    return (0, c.job_rank) if c.job_rank is not None else (1, c.number)


def matches(job: Job, patterns: Sequence[str]) -> bool:
    """Whether ``job`` is selected by one of ``patterns`` (none: every job). A pattern is DATASET[/CHAPTER[/MODEL]]
    with shell wildcards, e.g. ``mnist/prequential``, ``cifar10``, ``*/variational``."""
    fields = (job.dataset, job.chapter, job.model)
    return not patterns or any(all(fnmatch.fnmatchcase(f, p) for f, p in zip(fields, pat.strip("/").split("/")))
                               for pat in patterns)


def make_jobs(scale: str, datasets: Sequence[str] = DATASETS, chapter_names: Sequence[str] | None = None,
              seeds: Sequence[int] = (0,), only: Sequence[str] = (), cap_samples: int | None = None,
              cap_epochs: int | None = None) -> list[Job]:
    """Every run of ``chapter_names`` (default: the registry's core chapters) on ``datasets`` for each seed, in
    priority order, filtered by ``only``."""
    scales.check_scale(scale)
    chapter_names = list(chapter_names or codes.core_chapters())
    if cap_samples or cap_epochs:
        without = [c for c in chapter_names if not codes.takes_caps(c)]
        if without:
            raise JobError(f"a sample or epoch cap (a dry run) is implemented for "
                           f"{', '.join(c.name for c in codes.CHAPTERS if codes.takes_caps(c.name))} only, not for "
                           f"{', '.join(without)}; pass --chapters with those")
    jobs = []
    for chapter in sorted(dict.fromkeys(chapter_names), key=_rank):
        for seed in seeds:
            for ds in datasets:
                names = sorted((m for _, m in codes.runs(chapter, ds, scale)), key=lambda m: codes.priority(chapter, m))
                jobs += [Job(chapter, ds, m, int(seed), scale, cap_samples, cap_epochs) for m in names]
    return [j for j in jobs if matches(j, only)]


# ------------------------------------------------------------------ planned work


def architecture(job: Job) -> str | None:
    """The network a job trains (from its recipe, the registry's networks hook); None for a job that trains
    nothing or more than one network."""
    if not codes.trains(job.chapter):
        return None
    nets = codes.networks(job.chapter, job.model, job.dataset, job.scale)
    return nets[0] if len(nets) == 1 else None


def planned_work(job: Job, root: str | None = None, out: Path | None = None) -> int | None:
    """Samples x max epochs summed over the job's trainings (without the units in ``out``'s checkpoint); None for a
    chapter that states none (the registry's planned_work hook)."""
    return codes.planned_work(job.chapter, job.dataset, job.model, job.scale,
                              **job.option(root=out, data_root=root))


def forward_flops(model: str, input_shape: Sequence[int], num_classes: int) -> tuple[int, int]:
    """(FLOPs of one forward pass on one input, counted by torch's FlopCounterMode; parameters) of ``model``."""
    net = models.build(model, tuple(input_shape), num_classes, seed=0).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(torch.zeros(1, *input_shape))
    return int(counter.get_total_flops()), models.num_parameters(net)


# ------------------------------------------------------------------ throughput


def parse_throughput(items: Sequence[str]) -> dict[str, float]:
    """``["vgg_mnist=20000", "5000"]`` -> {"vgg_mnist": 20000.0, "*": 5000.0} (samples/s; "*": every other model)."""
    rates = {}
    for item in items:
        model, _, value = item.rpartition("=")
        try:
            rates[model or "*"] = float(value)
        except ValueError:
            raise JobError(f"--throughput takes MODEL=SAMPLES_PER_S or SAMPLES_PER_S, got {item!r}") from None
        if rates[model or "*"] <= 0:
            raise JobError(f"--throughput must be positive, got {item!r}")
    return rates


def probe_throughput(job: Job, device: str = "auto", root: str | None = None, min_seconds: float = 1.0
                     ) -> float | None:
    """Planned-work samples per second of the job's model (its chapter's probe hook; None without one)."""
    return codes.probe(job.chapter, job.model, job.dataset, job.scale, device=device, data_root=root,
                       min_seconds=min_seconds)


# ------------------------------------------------------------------ one job


def compute(job: Job, device: str = "auto", root: str | None = None, out: Path | None = None,
            on_block=None) -> results.CodeResult:
    """The job's CodeResult: its chapter's compute() (without a progress bar; the results store ``out``), or a
    capped dry run."""
    result = codes.compute(job.chapter, job.dataset, job.model, job.scale, caps=job.caps, seed=job.seed,
                           device=device, data_root=root, progress=False, on_block=on_block,
                           root=None if out is None else Path(out))
    result.model = job.model  # the run's name (a recipe name such as mlp_warm), not only its architecture
    return result


def samples_per_second(result: results.CodeResult) -> float | None:
    """Samples trained per second of training blocks (prequential results), else None."""
    trained, seconds = result.curves.get("samples_trained"), result.curves.get("block_seconds")
    return sum(trained) / sum(seconds) if trained and seconds and sum(seconds) > 0 else None


def stamp_source(result: results.CodeResult) -> None:
    """Where the run's tree had no git (a copy sent to a GPU machine): the commit and modified files recorded in
    the JSON file named by ``MDL_SOURCE`` (scripts/gpu_paper.sh prepare writes it) go into the provenance."""
    source = os.environ.get("MDL_SOURCE")
    if result.provenance.get("git_commit") or not source or not Path(source).is_file():
        return
    recorded = json.loads(Path(source).read_text())
    result.provenance.update(git_commit=recorded["git_commit"], git_dirty=recorded["git_dirty"],
                             git_source=f"{source}: recorded where the tree was copied from (the run had no .git)")


def execute(job: Job, out: str | Path, device: str = "auto", root: str | None = None) -> dict:
    """Run ``job`` here and store its result under ``out``; its row of the final table (status "done")."""
    out = Path(out)
    t0 = time.perf_counter()
    result = compute(job, device, root, out,
                     on_block=lambda unit, done, total: _say(block_line(job, done, total, unit)))
    stamp_source(result)
    results.save(result, job.chapter, root=out)
    return {"status": "done", "seconds": time.perf_counter() - t0, "kbits": result.kbits,
            "samples_per_s": samples_per_second(result)}


def is_stored(job: Job, out: Path) -> bool:
    """Whether ``out`` holds this job's result (from a run with the same override: a dry run never counts as real)."""
    path = job.result_file(out)
    if not path.is_file():
        return False
    try:
        return results.load_file(path).params.get("override") == job.override
    except results.ResultFileError:
        return False


# ------------------------------------------------------------------ worker processes


def _say(line: str) -> None:
    """One line to stdout in one write (lines of several processes never mix)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def block_line(job: Job, k: int, total: int | None, unit: dict) -> str:
    """The progress line of a finished unit (a prequential block: its record, as the chapter's on_block gives it)."""
    t_start, t_end = unit["t_start"], unit["t_end"]
    return (f"[{job.name}] block {k}/{total or '?'} t={t_start}..{t_end}: {unit['epochs_run']} epochs (best "
            f"{unit['best_epoch']}), {unit['seconds']:.1f} s, {unit['bits_calibrated'] / (t_end - t_start):.3f} "
            "bits/label")


def units_kept(job: Job, out: Path) -> int:
    """Finished units in the job's checkpoint in ``out`` (0 without one)."""
    path = job.checkpoint_file(out)
    try:
        return len(checkpoint.read_state(path).get("units", [])) if path is not None and path.is_file() else 0
    except (OSError, ValueError):
        return 0


def state_file(out: Path, job: Job, suffix: str) -> Path:
    """The job's ``<out>/.jobs/<job>.<suffix>`` (its stderr log, its status row)."""
    return Path(out) / STATE_DIR / f"{results.slug(job.name)}.{suffix}"


def failure(e: BaseException, where: str = "") -> dict:
    """The row of a job that raised ``e`` (one line; ``where``: the log holding the traceback)."""
    return {"status": f"failed: {type(e).__name__}: {' '.join(str(e).split())[:200]}" + (f" ({where})" if where else "")}


def run_watched(job: Job, out: str | Path, device: str = "auto", root: str | None = None, where: str = "") -> dict:
    """:func:`execute` (one progress line per finished unit); an error becomes a failed row (traceback on stderr).
    The target of worker processes and of Slurm tasks."""
    try:
        return execute(job, out, device, root)
    except Exception as e:
        traceback.print_exc()
        return failure(e, where)


def worker(job: Job, out: str, device: str, root: str | None, threads: int | None) -> None:
    """A worker process: runs ``job`` with its stderr (bars, warnings, tracebacks) in <out>/.jobs/<job>.log, its
    progress lines on stdout, and writes its final row to <out>/.jobs/<job>.status.json."""
    log = state_file(Path(out), job, "log")
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    with open(log, "a") as f:
        os.dup2(f.fileno(), 2)
    if threads:
        torch.set_num_threads(threads)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # the deadline: unwind (checkpoint writes are atomic)
    row = run_watched(job, out, device, root, where=f"log: {log}")
    results.write_json_atomic(state_file(Path(out), job, "status.json"), row)


# ------------------------------------------------------------------ the local runner


@dataclasses.dataclass
class RunOptions:
    """How to run: results store ``out``, ``device``, ``data_root``, ``workers`` processes of ``threads`` torch
    threads, ``budget`` seconds (None: no deadline), ``throughput`` samples/s per model ("*": any), ``partial``
    (start jobs that cannot finish in time), ``probe_seconds`` (the probe's block length)."""

    out: Path
    device: str = "auto"
    data_root: str | None = None
    workers: int = 1
    threads: int | None = None
    budget: float | None = None
    throughput: dict[str, float] = dataclasses.field(default_factory=dict)
    partial: bool = False
    probe_seconds: float = 1.0


class LocalRunner:
    """Runs jobs in worker processes (spawn) on this machine, in priority order, within a budget."""

    def __init__(self, jobs: Sequence[Job], opts: RunOptions):
        self.jobs, self.opts = list(jobs), opts
        self.rows: dict[Job, dict] = {}
        self.running: dict[Job, tuple[Any, float]] = {}
        self.rates = dict(opts.throughput)
        self.probed: dict[str, float] = {}
        self.start = time.monotonic()
        self.deadline = self.start + opts.budget if opts.budget is not None else None
        self.context = multiprocessing.get_context("spawn")

    def left(self) -> float:
        """Seconds to the deadline (infinite without a budget)."""
        return self.deadline - time.monotonic() if self.deadline is not None else float("inf")

    def rate(self, job: Job) -> float | None:
        """Throughput of the job's model: given (per model name, "*" for any), else probed once per dataset and
        model (in this process; not with ``partial``, which needs none)."""
        given = self.rates.get(job.model, self.rates.get("*"))
        key = f"{job.dataset}/{job.model}"
        if given is not None or key in self.probed or self.opts.partial:
            return given if given is not None else self.probed.get(key)
        with torch_threads(self.opts.threads):
            self.probed[key] = probe_throughput(job, self.opts.device, self.opts.data_root, self.opts.probe_seconds)
        if self.probed[key] is None:
            return None
        _say(f"[probe] {key}: {self.probed[key]:,.0f} samples/s on {resolve_device(self.opts.device)}")
        return self.probed[key]

    def estimate(self, job: Job) -> float | None:
        """Seconds the job's remaining planned work takes at its model's throughput (None: no planned work)."""
        work = planned_work(job, self.opts.data_root, self.opts.out)
        rate = self.rate(job) if work else None
        return work / rate if rate else None

    def run(self) -> list[dict]:
        """Run every job; the final table's rows, in job order."""
        pending = [j for j in self.jobs if not self.check_stored(j)]
        self._warm_data(pending)
        try:
            while pending or self.running:
                self._reap()
                if self.left() <= 0:
                    self._stop_all()
                    for job in pending:
                        self.rows[job] = {"status": "skipped: budget (deadline reached)"}
                    break
                pending = self.dispatch(pending)
                time.sleep(0.1)
        finally:
            self._stop_all()
        return [{"job": j.name, **self.rows[j]} for j in self.jobs]

    def check_stored(self, job: Job) -> bool:
        """Whether the job's result is stored already (then its row says so and it is not run again)."""
        if is_stored(job, self.opts.out):
            self.rows[job] = {"status": "stored (not run again)"}
            return True
        return False

    def _warm_data(self, pending: Sequence[Job]) -> None:
        """Load each dataset once here (checks it is there; decodes a CIFAR-10 pack into the cache once)."""
        for ds in dict.fromkeys(j.dataset for j in pending if codes.trains(j.chapter)):
            for split in data.SPLITS:
                data.load(ds, split, root=self.opts.data_root, n=1)

    def dispatch(self, pending: list[Job]) -> list[Job]:
        """Start what can start now, in priority order; the jobs still waiting."""
        waiting = []
        for job in pending:
            deps = job.needs()
            if any(d in self.running or d in pending for d in deps):
                waiting.append(job)
            elif missing := [d.name for d in deps if not is_stored(d, self.opts.out)]:
                self.rows[job] = {"status": f"skipped: needs {', '.join(missing)}"}
            elif not codes.trains(job.chapter):
                self.rows[job] = self._in_process(job)
            elif len(self.running) >= self.opts.workers:
                waiting.append(job)
            else:
                self._start(job)
        return waiting

    def _in_process(self, job: Job) -> dict:
        try:
            row = execute(job, self.opts.out, self.opts.device, self.opts.data_root)
        except Exception as e:
            row = failure(e)
        _say(f"[{row['status'].split(':')[0]}] {job.name}")
        return row

    def _start(self, job: Job) -> None:
        """Start ``job`` in a worker process, unless its planned work cannot finish before the deadline."""
        est = self.estimate(job) if self.deadline is not None else None
        if est is not None and est > self.left() and not self.opts.partial:
            self.rows[job] = {"status": "skipped: budget", "estimate_s": est}
            _say(f"[skipped: budget] {job.name}: planned work needs ~{est:,.0f} s, {self.left():,.0f} s left")
            return
        state_file(self.opts.out, job, "status.json").unlink(missing_ok=True)
        p = self.context.Process(target=worker, name=job.name, args=(
            job, str(self.opts.out), self.opts.device, self.opts.data_root, self.opts.threads))
        p.start()
        self.running[job] = (p, time.perf_counter())
        _say(f"[start] {job.name}" + (f" (planned work ~{est:,.1f} s)" if est is not None else ""))

    def _reap(self) -> None:
        """Collect the rows of finished worker processes."""
        for job, (p, t0) in list(self.running.items()):
            if p.is_alive():
                continue
            p.join()
            del self.running[job]
            status = state_file(self.opts.out, job, "status.json")
            row = json.loads(status.read_text()) if status.is_file() else {
                "status": f"failed: worker exited with code {p.exitcode} (log: {state_file(self.opts.out, job, 'log')})"}
            self.rows[job] = row
            _say(f"[{row['status'].split(':')[0]}] {job.name}" + (
                f" in {row['seconds']:.1f} s, {row['kbits']:.2f} kbits" if row["status"] == "done" else
                f": {row['status']}"))

    def _stop_all(self, grace: float = 10.0) -> None:
        """Terminate the running workers (the deadline), all at once, each killed after ``grace`` seconds: a
        prequential job keeps the checkpoint of its finished blocks; one that finished meanwhile keeps its row."""
        stopping = list(self.running.items())
        for _, (p, _) in stopping:
            p.terminate()
        end = time.monotonic() + grace
        for job, (p, t0) in stopping:
            p.join(max(0.0, end - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join()
            del self.running[job]
            status = state_file(self.opts.out, job, "status.json")
            if status.is_file():
                self.rows[job] = json.loads(status.read_text())
                continue
            kept = units_kept(job, self.opts.out)
            self.rows[job] = {"status": f"stopped: deadline ({kept} blocks kept in its checkpoint)",
                              "seconds": time.perf_counter() - t0}
            _say(f"[stopped: deadline] {job.name}: {kept} blocks kept")


# ------------------------------------------------------------------ Slurm (submitit)


@dataclasses.dataclass
class SlurmOptions:
    """One Slurm task per job: ``partition``, ``gpus`` and ``cpus`` per task, ``time`` minutes per task;
    ``cluster``: "slurm", or "local" to run the same submission on this machine (tests)."""

    partition: str | None = None
    gpus: int = 1
    cpus: int = 8
    time: int = 120
    cluster: str = "slurm"


def run_slurm(jobs: Sequence[Job], opts: RunOptions, slurm: SlurmOptions) -> list[dict]:
    """Submit the jobs that train (one Slurm array task each) through submitit, wait for them, then run the
    in-process ones (switch) here; results land in ``opts.out`` (a folder the cluster's nodes share)."""
    try:
        import submitit
    except ImportError:
        raise JobError("--executor slurm needs submitit; install it with pip install -e '.[slurm]'") from None
    runner = LocalRunner(jobs, dataclasses.replace(opts, budget=None))
    pending = [j for j in jobs if not runner.check_stored(j)]
    remote = [j for j in pending if codes.trains(j.chapter)]
    executor = submitit.AutoExecutor(folder=Path(opts.out) / STATE_DIR / "submitit", cluster=slurm.cluster)
    executor.update_parameters(name="mdl_utils.jobs", timeout_min=slurm.time, gpus_per_node=slurm.gpus,
                               cpus_per_task=slurm.cpus, slurm_partition=slurm.partition)
    n = len(remote)
    submitted = executor.map_array(run_watched, remote, [str(opts.out)] * n, [opts.device] * n, [opts.data_root] * n)
    for job, task in zip(remote, submitted):
        _say(f"[submitted] {job.name}: job {task.job_id}")
    for job, task in zip(remote, submitted):
        try:
            runner.rows[job] = task.result()
        except Exception as e:  # the task was killed (time limit, node failure): submitit says so, with its log
            runner.rows[job] = failure(e, f"logs in {executor.folder}")
        _say(f"[{runner.rows[job]['status'].split(':')[0]}] {job.name}")
    runner.dispatch([j for j in pending if not codes.trains(j.chapter)])
    return [{"job": j.name, **runner.rows[j]} for j in jobs]


# ------------------------------------------------------------------ tables and the CLI


def _num(value: float | None, fmt: str = ",.0f") -> str:
    return "" if value is None else format(value, fmt)


def plan_rows(jobs: Sequence[Job], root: str | None = None, out: Path | None = None,
              rates: dict[str, float] | None = None) -> list[dict]:
    """Per job: planned work (samples x max epochs), what is left of it, parameters, forward FLOPs per sample,
    planned training FLOPs (3 x forward x work) and, with ``rates``, the seconds it needs."""
    rows = []
    for job in jobs:
        work = planned_work(job, root)
        left = planned_work(job, root, out) if out is not None else work
        info = data.info(job.dataset, root)
        arch = architecture(job)
        flops, params = forward_flops(arch, info.shape, info.K) if arch else (None, None)
        rate = (rates or {}).get(job.model, (rates or {}).get("*"))
        rows.append({"job": job.name, "blocks": codes.blocks(job.chapter, job.dataset, job.model, job.scale,
                                                             **job.option(data_root=root)),
                     "work": work, "left": left,
                     "stored": out is not None and is_stored(job, out), "parameters": params, "flops": flops,
                     "train_flops": TRAIN_FLOPS_PER_FORWARD * flops * work if flops and work else None,
                     "seconds": left / rate if rate and left is not None else None})
    return rows


def plans(scales_: Sequence[str] = ("cpu", "paper")) -> dict[str, list[dict]]:
    """The plan rows (:func:`plan_rows`) of every core job at each of ``scales_`` (the summary's notes)."""
    return {s: plan_rows(make_jobs(s)) for s in scales_}


def plan_table(rows: Sequence[dict]) -> str:
    """The plan as Markdown, with the totals."""
    body = [[i + 1, r["job"], _num(r["blocks"]), _num(r["work"]), "stored" if r["stored"] else _num(r["left"]),
             _num(r["parameters"]), _num(r["flops"] and r["flops"] / 1e6, ",.2f"),
             _num(r["train_flops"] and r["train_flops"] / 1e12, ",.1f"), _num(r["seconds"])]
            for i, r in enumerate(rows)]
    total = [sum(r[k] or 0 for r in rows) for k in ("work", "train_flops", "seconds")]
    body.append(["", "total", "", _num(total[0]), "", "", "", _num(total[1] / 1e12, ",.1f"),
                 _num(total[2]) if any(r["seconds"] for r in rows) else ""])
    return markdown(["#", "job", "blocks", "samples x max epochs", "left", "parameters", "fwd MFLOP/sample",
                     "train TFLOP", "est. s"], body)


def run_table(rows: Sequence[dict]) -> str:
    """The final table of a run."""
    return markdown(["job", "status", "seconds", "kbits", "samples/s"],
                    [[r["job"], r["status"], _num(r.get("seconds"), ".1f"), _num(r.get("kbits"), ".2f"),
                      _num(r.get("samples_per_s"))] for r in rows])


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
