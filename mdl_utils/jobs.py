"""Jobs: the book's runs as (chapter, dataset, model, seed, scale) jobs, planned against a budget and run.

    python -m mdl_utils.jobs plan --scale paper                   # the jobs in priority order with their planned work
    python -m mdl_utils.jobs run --scale paper --only mnist/prequential --workers 2 --budget 200 --out DIR
    python -m mdl_utils.jobs run --scale paper --executor slurm --partition gpu --gpus 1 --time 120

A job calls its chapter's ``compute()`` and stores the result under ``--out`` (a results store; default the
project's results/) as soon as it finishes; a job whose result is already there is not run again (resume), and a
prequential job that was stopped resumes after its last finished block (its checkpoint in
``<out>/prequential/.partial/``). Priority: the prequential runs that Table 2's switch codes need (largest models
first), then the switch codes (computed in the main process from the stored per-sample bits, once those runs are
there), then the variational code and the two-part family.

Planned work of a job: samples x max epochs summed over its trainings (prequential: t_s samples for block s, for
every block), so an upper bound: early stopping ends most blocks sooner. With ``--budget SECONDS`` a job is started
only when its remaining planned work / throughput fits in the time left (``--partial`` starts it anyway); the
throughput (planned-work samples per second of the model's prequential block, evaluation included) comes from a
short probe on random inputs, or from ``--throughput``. A job still running at the deadline is terminated and
keeps its checkpoint. docs/PAPER_SCALE.md runs the paper scale on a GPU (scripts/gpu_paper.sh) and on Slurm.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fnmatch
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from . import chapters, codes, data, models, numerics, results, scales
from .codes import prequential
from .tables import markdown
from .training import resolve_device, torch_threads

CORE_CHAPTERS = ("prequential", "switch", "variational", "two_part", "network_compression", "intrinsic_dimension")
MODEL_PRIORITY = ("vgg_mnist", "vgg_cifar_bn", "vgg_cifar", "tinycnn", "shallow", "mlp")  # Table 2's, largest first
DATASETS = ("mnist", "cifar10")
IN_PROCESS = ("switch",)  # train nothing: run in the main process once the runs they read are stored
SPLITS = {"mnist": (60000, (1, 28, 28), 10), "cifar10": (50000, (3, 32, 32), 10),
          "synthetic": (data.SYNTHETIC_SIZES["train"], (data.SYNTHETIC_DIM,), data.SYNTHETIC_CLASSES)}
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
    def override(self) -> dict | None:
        """The dry-run override stored in the result's params (None for a real run)."""
        if self.cap_samples is None and self.cap_epochs is None:
            return None
        return {"cap_samples": self.cap_samples, "cap_epochs": self.cap_epochs}

    def result_file(self, root: Path) -> Path:
        """Where the job's result is stored in the results store ``root``."""
        return results.result_path(self.chapter, self.dataset, self.model, self.scale, Path(root),
                                   code=chapters.code_of(self.chapter, self.model), seed=self.seed)

    def checkpoint_file(self, root: Path) -> Path | None:
        """Where prequential.compute keeps this job's finished blocks (None: not a checkpointed job)."""
        if self.chapter != "prequential" or self.override:
            return None
        path = results.result_path(self.chapter, self.dataset, self.model, self.scale, Path(root), seed=self.seed)
        return path.parent / ".partial" / path.name

    def needs(self) -> list["Job"]:
        """The prequential jobs whose stored results this job reads (switch codes), else none."""
        if self.chapter != "switch":
            return []
        module = codes.chapter("switch").module
        names = ([m for m in self.model.split("-")[1:] if m != "uniform"] if module.code_of(self.model) == "switch"
                 else [self.model])
        return [Job("prequential", self.dataset, m, self.seed, self.scale) for m in names]


# ------------------------------------------------------------------ the job list


def _rank(chapter: str) -> int:
    names = [c.name for c in codes.CHAPTERS]
    return CORE_CHAPTERS.index(chapter) if chapter in CORE_CHAPTERS else len(CORE_CHAPTERS) + names.index(chapter)


def _model_rank(model: str) -> int:
    return MODEL_PRIORITY.index(model) if model in MODEL_PRIORITY else len(MODEL_PRIORITY)


def matches(job: Job, patterns: Sequence[str]) -> bool:
    """Whether ``job`` is selected by one of ``patterns`` (none: every job). A pattern is DATASET[/CHAPTER[/MODEL]]
    with shell wildcards, e.g. ``mnist/prequential``, ``cifar10``, ``*/variational``."""
    fields = (job.dataset, job.chapter, job.model)
    return not patterns or any(all(fnmatch.fnmatchcase(f, p) for f, p in zip(fields, pat.strip("/").split("/")))
                               for pat in patterns)


def make_jobs(scale: str, datasets: Sequence[str] = DATASETS, chapter_names: Sequence[str] = CORE_CHAPTERS,
              seeds: Sequence[int] = (0,), only: Sequence[str] = (), cap_samples: int | None = None,
              cap_epochs: int | None = None) -> list[Job]:
    """Every run of ``chapter_names`` on ``datasets`` for each seed, in priority order, filtered by ``only``."""
    scales.check_scale(scale)
    if (cap_samples or cap_epochs) and set(chapter_names) != {"prequential"}:
        raise JobError("a sample or epoch cap is implemented for the prequential chapter only; "
                       "pass --chapters prequential")
    jobs = []
    for chapter in sorted(dict.fromkeys(chapter_names), key=_rank):
        for seed in seeds:
            for ds in datasets:
                names = [m for _, m in chapters.runs(chapter, ds, scale)]
                if chapter == "prequential":
                    names.sort(key=_model_rank)
                jobs += [Job(chapter, ds, m, int(seed), scale, cap_samples, cap_epochs) for m in names]
    return [j for j in jobs if matches(j, only)]


# ------------------------------------------------------------------ planned work


def split_info(dataset: str, root: str | None = None) -> tuple[int, tuple[int, ...], int]:
    """(training samples, input shape, classes) of ``dataset`` (loaded only when it is not a built-in one)."""
    if dataset in SPLITS:
        return SPLITS[dataset]
    d = data.load(dataset, "train", root=root, seed=None)
    return d.n, tuple(d.x.shape[1:]), d.K


def prequential_settings(job: Job) -> prequential.Settings:
    """The prequential chapter's settings at the job's scale, with a dry run's sample cap applied."""
    s = prequential.settings(job.scale)
    if job.cap_samples is None:
        return s
    return dataclasses.replace(s, n_train=min(job.cap_samples, s.n_train or job.cap_samples),
                               n_test=min(job.cap_samples, s.n_test or job.cap_samples))


def prequential_recipe(job: Job, root: str | None = None) -> prequential.Recipe:
    """The Recipe the job's prequential code runs (timesteps over all the samples it loads; a dry run's epoch cap)."""
    s = prequential_settings(job)
    size = split_info(job.dataset, root)[0]
    recipe = s.recipe(job.dataset, job.model, min(size, s.n_train) if s.n_train else size, job.seed)
    return recipe if job.cap_epochs is None else dataclasses.replace(recipe, epochs=job.cap_epochs)


def architecture(job: Job) -> str | None:
    """The network a job trains (a prequential run name maps to its recipe's architecture); None for a job that
    trains nothing (switch, the uniform code) or whose model is not one network."""
    if job.chapter in IN_PROCESS:
        return None
    arch = prequential_recipe(job).model if job.chapter == "prequential" else job.model
    return arch if arch in models.ARCHITECTURES else None


def block_work(recipe: prequential.Recipe, t_s: int) -> int:
    """Samples x epochs of one prequential block at most: t_s x max epochs, or the recipe's step cap in samples."""
    caps = [t_s * recipe.epochs] if recipe.epochs else []
    if getattr(recipe, "max_steps", None):  # recipes with a step budget (warm chains)
        caps.append(recipe.max_steps * recipe.batch_size)
    if not caps:
        raise JobError(f"recipe {recipe.model!r} caps neither epochs nor steps: its planned work is unbounded")
    return min(caps)


def blocks_done(job: Job, out: Path) -> set[int]:
    """t_s of the blocks in the job's checkpoint (not checked against its fingerprint: a plan, not a proof)."""
    path = job.checkpoint_file(out)
    if path is None or not path.is_file():
        return set()
    try:
        return {int(u["t_start"]) for u in json.loads(path.read_text()).get("units", [])}
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def planned_work(job: Job, root: str | None = None, out: Path | None = None) -> int | None:
    """Samples x max epochs summed over the job's trainings (without the blocks in ``out``'s checkpoint);
    None for a chapter without a formula here."""
    if job.chapter == "prequential":
        recipe = prequential_recipe(job, root)
        done = blocks_done(job, out) if out is not None else set()
        return sum(block_work(recipe, t) for t in recipe.timesteps[:-1] if t not in done)
    s = codes.chapter(job.chapter).module.settings(job.scale)
    size = split_info(job.dataset, root)[0]
    n = min(size, s.n_train) if getattr(s, "n_train", None) else size
    formulas = {
        "switch": lambda: 0,
        "two_part": lambda: n * s.epochs,
        "variational": lambda: n * s.epochs_for(job.dataset) * len(s.sigma0_grid),
        "network_compression": lambda: n * (s.epochs + len(s.sparsities) * s.finetune_epochs),
        "intrinsic_dimension": lambda: n * s.epochs * len(s.dims),
    }
    return formulas[job.chapter]() if job.chapter in formulas else None


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


def _random_dataset(n: int, shape: Sequence[int], k: int) -> data.Dataset:
    g = torch.Generator().manual_seed(0)
    return data.Dataset(name="probe", split="train", x=torch.randn(n, *shape, generator=g),
                        y=torch.randint(0, k, (n,), generator=g), K=k, classes=[str(c) for c in range(k)],
                        source="random inputs (throughput probe)", seed=None, indices=np.arange(n))


def probe_throughput(model: str, dataset: str, scale: str, device: str = "auto", root: str | None = None,
                     min_seconds: float = 1.0, max_samples: int = 16384) -> float:
    """Planned-work samples per second of ``model``: one prequential block (training on t_s random inputs for two
    epochs, validation, per-epoch encoding and calibration, as at ``scale``), t_s growing x4 from 256 until the
    block takes ``min_seconds`` or t_s reaches ``max_samples``. Small blocks make it a pessimistic number."""
    _, shape, k = split_info(dataset, root)
    recipe = dataclasses.replace(prequential.settings(scale).recipe(dataset, model, 2), epochs=2, patience=2)
    n = 256
    while True:
        block = prequential.encode_block(_random_dataset(2 * n, shape, k), None, n, 2 * n, recipe,
                                         resolve_device(device))
        if block["seconds"] >= min_seconds or n >= max_samples:
            return n * recipe.epochs / block["seconds"]
        n *= 4


# ------------------------------------------------------------------ one job


@contextlib.contextmanager
def results_store(out: Path):
    """MDL_RESULTS set to ``out`` inside the block (the codes read and checkpoint there), restored afterwards."""
    before = os.environ.get("MDL_RESULTS")
    os.environ["MDL_RESULTS"] = str(out)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MDL_RESULTS", None)
        else:
            os.environ["MDL_RESULTS"] = before


def capped_prequential(job: Job, device: str, root: str | None) -> results.CodeResult:
    """A dry run: prequential.prequential_code with the job's capped Recipe (no checkpoint), the override stated."""
    s = prequential_settings(job)
    train = data.load(job.dataset, "train", root=root, n=min(s.n_train, split_info(job.dataset, root)[0]),
                      seed=job.seed)
    test = data.load(job.dataset, "test", root=root, seed=job.seed)
    test = test.head(min(s.n_test, test.n))
    with torch_threads(s.num_threads):
        result = prequential.prequential_code(train, test, prequential_recipe(job, root), scale=job.scale,
                                              device=device, progress=False, checkpoint_path=None)
    result.model = job.model  # the run's name (a recipe name such as mlp_warm), not only its architecture
    result.params["override"] = job.override
    result.note = (f"DRY RUN, not the {job.scale} result: first {train.n} samples, at most "
                   f"{result.params['epochs']} epochs per block (mdl_utils.jobs cap); " + result.note)
    return result


def compute(job: Job, device: str = "auto", root: str | None = None) -> results.CodeResult:
    """The job's CodeResult: its chapter's compute() (prequential without a progress bar), or a capped dry run."""
    if job.override:
        return capped_prequential(job, device, root)
    module = codes.chapter(job.chapter).module
    extra = {"progress": False} if job.chapter == "prequential" else {}
    return module.compute(job.dataset, job.model, job.scale, seed=job.seed, device=device, data_root=root, **extra)


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
    with results_store(out):
        result = compute(job, device, root)
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


def block_line(job: Job, k: int, total: int | None, t_start: int, t_end: int, epochs: int, best: int,
               seconds: float, bits: float) -> str:
    """The progress line of a finished prequential block."""
    return (f"[{job.name}] block {k}/{total or '?'} t={t_start}..{t_end}: {epochs} epochs (best {best}), "
            f"{seconds:.1f} s, {bits / (t_end - t_start):.3f} bits/label")


class BlockWatcher:
    """Prints one line per finished prequential block: polls the job's checkpoint file while it runs (the code has
    no per-block hook), then :meth:`finish` prints the blocks it missed from the stored result."""

    def __init__(self, job: Job, out: Path, period: float = 0.5):
        self.job, self.out, self.path, self.period = job, out, job.checkpoint_file(out), period
        self.seen: set[int] = set()
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        if self.path is not None:
            self.seen = blocks_done(job, out)  # a resumed run: those blocks were shown by the run that did them
            self.thread.start()

    def _show(self, total: int | None, t_start: int, *values) -> None:
        if t_start not in self.seen:
            self.seen.add(t_start)
            _say(block_line(self.job, len(self.seen), total, t_start, *values))

    def _loop(self) -> None:
        stamp = None
        while not self.stop_event.wait(self.period):
            try:
                st = self.path.stat()
                if (st.st_size, st.st_mtime_ns) == stamp:
                    continue
                stamp = (st.st_size, st.st_mtime_ns)
                state = json.loads(self.path.read_text())
            except (OSError, ValueError):
                continue
            for u in sorted(state.get("units", []), key=lambda u: u["t_start"]):
                self._show(state.get("total"), u["t_start"], u["t_end"], u["epochs_run"], u["best_epoch"],
                           u["seconds"], u["bits_calibrated"])

    def finish(self) -> None:
        """Stop polling; print the blocks not shown yet from the stored result (the checkpoint is gone by then)."""
        self.stop_event.set()
        if not self.thread.is_alive():
            return
        self.thread.join()
        path = self.job.result_file(self.out)
        if path.is_file():
            c = results.load_file(path).curves
            for row in zip(c["t_start"], c["t_end"], c["epochs_run"], c["best_epoch"], c["block_seconds"], c["bits"]):
                self._show(len(c["t_start"]), *row)


def state_file(out: Path, job: Job, suffix: str) -> Path:
    """The job's ``<out>/.jobs/<job>.<suffix>`` (its stderr log, its status row)."""
    return Path(out) / STATE_DIR / f"{results.slug(job.name)}.{suffix}"


def failure(e: BaseException, where: str = "") -> dict:
    """The row of a job that raised ``e`` (one line; ``where``: the log holding the traceback)."""
    return {"status": f"failed: {type(e).__name__}: {' '.join(str(e).split())[:200]}" + (f" ({where})" if where else "")}


def run_watched(job: Job, out: str | Path, device: str = "auto", root: str | None = None, where: str = "") -> dict:
    """:func:`execute` with one progress line per prequential block; an error becomes a failed row (traceback on
    stderr). The target of worker processes and of Slurm tasks."""
    watcher = BlockWatcher(job, Path(out))
    try:
        return execute(job, out, device, root)
    except Exception as e:
        traceback.print_exc()
        return failure(e, where)
    finally:
        watcher.finish()


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
            self.probed[key] = probe_throughput(job.model, job.dataset, job.scale, self.opts.device,
                                                self.opts.data_root, self.opts.probe_seconds)
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
        for ds in dict.fromkeys(j.dataset for j in pending if j.chapter not in IN_PROCESS):
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
            elif job.chapter in IN_PROCESS:
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
            kept = len(blocks_done(job, self.opts.out))
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
    remote = [j for j in pending if j.chapter not in IN_PROCESS]
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
    runner.dispatch([j for j in pending if j.chapter in IN_PROCESS])
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
        n, shape, k = split_info(job.dataset, root)
        arch = architecture(job)
        flops, params = forward_flops(arch, shape, k) if arch else (None, None)
        rate = (rates or {}).get(job.model, (rates or {}).get("*"))
        rows.append({"job": job.name, "blocks": len(prequential_recipe(job, root).timesteps) - 1
                     if job.chapter == "prequential" else None, "work": work, "left": left,
                     "stored": out is not None and is_stored(job, out), "parameters": params, "flops": flops,
                     "train_flops": TRAIN_FLOPS_PER_FORWARD * flops * work if flops and work else None,
                     "seconds": left / rate if rate and left is not None else None})
    return rows


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
        p.add_argument("--chapters", nargs="+", default=list(CORE_CHAPTERS), choices=[c.name for c in codes.CHAPTERS],
                       metavar="CHAPTER", help=f"default: {' '.join(CORE_CHAPTERS)}")
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
