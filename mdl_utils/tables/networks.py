"""The networks of the book: each architecture of the model registry (:data:`mdl_utils.models.ARCHITECTURES`), its
layers, its parameter counts on MNIST and CIFAR-10 inputs, the chapters and prequential runs that train it (read
from the chapters' own settings, :func:`mdl_utils.codes.runs`), and the paper's network it is or stands for."""

from __future__ import annotations

import torch

from .. import codes, data, models
from ..formats import markdown
from .render import DATASETS, display_markdown

__all__ = ["network_rows", "networks_table"]

SCALES = ("cpu", "paper")
# What each architecture is in the paper (App. C, D and Sec. 2-3): its own network, or ours standing in for one.
PAPER_NETWORK = {
    "logistic": "the linear baseline of Sec. 2.2",
    "mlp": "the paper's MLP",
    "mlp3x200": "the paper's Figure 1 network",
    "shallow": "the paper's shallow network (CIFAR-10)",
    "lenet": "the paper's LeNet-like network (two-part, compression, intrinsic dimension)",
    "small_cnn": "ours: a small CNN that trains in minutes on a CPU",
    "cnn4": "ours: the CPU stand-in for the MNIST VGG-like network",
    "vgg6": "ours: the CPU stand-in for VGGb (batch norm, augmentation)",
    "tinycnn": "the paper's tinyCNN (CIFAR-10)",
    "vgg_mnist": "the paper's MNIST VGG-like network (paper scale; no augmentation, as in the paper)",
    "vgg_cifar": "VGGa: the paper's 13-conv VGG without batch norm (paper scale)",
    "vgg_cifar_bn": "VGGb: the same with batch norm and augmentation (paper scale)",
}


def _parameters(name: str, dataset: str) -> int | None:
    """The number of trained parameters of ``name`` on ``dataset``'s inputs (10 classes); None when it does not fit."""
    shape = data.BUILT_IN[dataset].shape
    if models.misfit(name, shape) is not None:
        return None
    with torch.random.fork_rng(devices=[]):
        net = models.build(name, shape, 10, seed=0)
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def _uses() -> dict[str, dict]:
    """Per architecture: the chapter numbers that train it at some scale, and its prequential runs at each scale."""
    uses: dict[str, dict] = {}
    for chapter in codes.CHAPTERS:
        for dataset in DATASETS:
            for scale in SCALES:
                extra = getattr(chapter.module, "ablation_runs", lambda *_: [])(dataset, scale)
                for _, entry in [*codes.runs(chapter.name, dataset, scale), *extra]:
                    for net in codes.networks(chapter.name, entry, dataset, scale):
                        use = uses.setdefault(net, {"chapters": set(), "cpu": set(), "paper": set()})
                        use["chapters"].add(chapter.number)
                        if chapter.name == "prequential":
                            use[scale].add(_run_words(entry, dataset, scale))
    return uses


def _run_words(entry: str, dataset: str, scale: str) -> str:
    """A prequential run's name, with its augmentation in words ("shifts <= 2 px, flips")."""
    r = codes.chapter("prequential").module.settings(scale).recipe(dataset, entry, 2)
    if not r.augment:
        return entry
    return f"{entry} (shifts <= {r.augment_shift} px{', flips' if r.augment_flip else ''})"


def network_rows() -> list[dict]:
    """One dict per registered architecture: name, layers, parameters per dataset, chapters, runs, the paper's."""
    uses = _uses()
    rows = []
    for name, (_, layers) in models.ARCHITECTURES.items():
        use = uses.get(name, {"chapters": set(), "cpu": set(), "paper": set()})
        rows.append({"network": name, "layers": layers,
                     "parameters": {d: _parameters(name, d) for d in DATASETS},
                     "chapters": sorted(use["chapters"]), "cpu_runs": sorted(use["cpu"]),
                     "paper_runs": sorted(use["paper"]), "paper": PAPER_NETWORK.get(name, "")})
    return rows


def networks_table() -> str:
    """The networks table of the book (one row per architecture; :func:`network_rows`), rendered."""
    def count(n):
        return "does not fit" if n is None else f"{n:,}"

    def runs(r):
        return "; ".join(f"{scale}: {', '.join(r[f'{scale}_runs'])}" for scale in SCALES if r[f"{scale}_runs"])

    rows = [[f"`{r['network']}`", r["layers"].removeprefix("ours, not the paper's: "),
             " / ".join(count(r["parameters"][d]) for d in DATASETS), ", ".join(map(str, r["chapters"])) or "none",
             runs(r), r["paper"]] for r in network_rows()]
    header = ["network", "layers", f"parameters ({' / '.join(data.BUILT_IN[d].label for d in DATASETS)})",
              "chapters", "prequential runs", "in the paper"]
    text = markdown(header, rows, "Every network of the book, from the model registry; parameters for 10 classes; "
                                  "chapters: the chapters that train it at the cpu or paper scale.")
    display_markdown(text)
    return text
