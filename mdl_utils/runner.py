"""Running jobs (:mod:`mdl_utils.joblist`): each in a worker process (spawn) on this machine within a budget, or as
Slurm tasks through submitit, storing each result in a results store as soon as it finishes; a job that was
stopped resumes after its last finished unit; a chapter whose runs train nothing runs in this process once the
runs it needs are stored. One progress line per finished unit (the chapter's on_block).
"""

from __future__ import annotations

import dataclasses
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

from . import checkpoint, codes, data, results
from .formats import markdown
from .joblist import Job, JobError, _num, is_stored, planned_work, probe_throughput
from .training import resolve_device, torch_threads


STATE_DIR = ".jobs"  # under --out: per-job status and stderr logs, the Slurm folder, the last run's table


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


def _say(line: str) -> None:
    """One line to stdout in one write (lines of several processes never mix)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def block_line(job: Job, k: int, total: int | None, unit: dict) -> str:
    """The progress line of a finished unit (a prequential block: its record, as the chapter's on_block gives it)."""
    t_start, t_end = unit["t_start"], unit["t_end"]
    return (f"[{job.name}] block {k}/{total or '?'} t={t_start}..{t_end}: {unit['epochs_run']} epochs (best "
            f"{unit['best_epoch']}), {unit['seconds']:.1f} s, {unit['bits_uncalibrated'] / (t_end - t_start):.3f} "
            f"bits/label raw, {unit['bits_temperature'] / (t_end - t_start):.3f} at T = {unit['temperature']:.2f}")


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


def run_table(rows: Sequence[dict]) -> str:
    """The final table of a run."""
    return markdown(["job", "status", "seconds", "kbits", "samples/s"],
                    [[r["job"], r["status"], _num(r.get("seconds"), ".1f"), _num(r.get("kbits"), ".2f"),
                      _num(r.get("samples_per_s"))] for r in rows])
