"""The job list: the book's runs as (chapter, dataset, model, seed, scale) jobs, in priority order, with their
planned work (samples x max epochs, an upper bound: early stopping ends most blocks sooner), forward FLOPs and
the throughput they are planned at. Everything it knows of a chapter comes from the registry's hooks
(:mod:`mdl_utils.codes`): it names none. Run them with :mod:`mdl_utils.runner`; the command line is
:mod:`mdl_utils.jobs`.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from pathlib import Path
from typing import Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode

from . import codes, data, models, results, scales
from .formats import markdown


DATASETS = ("mnist", "cifar10")


TRAIN_FLOPS_PER_FORWARD = 3  # forward + backward ~ 3 forward passes (the usual rule of thumb)


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


def is_stored(job: Job, out: Path) -> bool:
    """Whether ``out`` holds this job's result (from a run with the same override: a dry run never counts as real)."""
    path = job.result_file(out)
    if not path.is_file():
        return False
    try:
        return results.load_file(path).params.get("override") == job.override
    except results.ResultFileError:
        return False


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
