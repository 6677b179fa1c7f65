"""The prequential chains a file code drives (:mod:`mdl_utils.codes.files`), advanced block by block: in this
process, or one worker process per chain (``parallel``: the switch code's models side by side), which receives the
inputs once, runs the same torch thread count and numerics, keeps its chain between blocks and returns each block's
raw logits and temperature: exactly what this process would compute.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Sequence

import numpy as np
import torch

from . import prequential


def _numpy(logits):
    """A chain's output (a list of calibrated logits per epoch, or (raw logits, temperature)) with float32 numpy
    arrays for tensors (what workers return)."""
    if isinstance(logits, list):
        return [z.numpy() for z in logits]
    z, temperature = logits
    return z.numpy(), temperature


def _next_block(chain, y_prefix, t_next: int, per_epoch: bool):
    return chain.next_block(y_prefix, t_next, per_epoch=True) if per_epoch else chain.next_block_raw(y_prefix, t_next)


_WORKER: dict = {}  # the chain of a worker process


def _worker_start(x: torch.Tensor, num_classes: int, recipe, num_threads: int, device: str) -> None:
    """A worker process's initializer: the same torch thread count and numerics as the main process (its
    environment: mdl_utils.numerics), and its chain."""
    torch.set_num_threads(num_threads)
    _WORKER["chain"] = prequential.chain_for(x, num_classes, recipe, device)


def _worker_next_block(y_prefix: np.ndarray, t_next: int, per_epoch: bool):
    """A worker's task: its chain's next block from the labels decoded so far."""
    return _numpy(_next_block(_WORKER["chain"], torch.from_numpy(y_prefix), t_next, per_epoch))


def _worker_context():
    """Fresh worker processes that share nothing with this one but the arguments: "forkserver" (a clean server
    process imports this module once, then forks each worker: ~0 s per pool after the first), else "spawn"."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


class Chains:
    """The prequential chains (prequential.Chain: cold or warm recipes, any Recipe) of several recipes, advanced
    block by block, in the order of the timesteps: in this process, or (``parallel``, more than one chain) one
    worker process per chain (:func:`_worker_context`), which receives the inputs once (shared memory), runs the
    same torch thread count, keeps its chain's state between blocks and returns each block's raw logits and
    temperature: exactly what this process would compute. ``per_epoch``: each block's calibrated logits after
    every epoch (self-switch)."""

    def __init__(self, x: torch.Tensor, num_classes: int, recipes: Sequence[prequential.Recipe], *,
                 per_epoch: bool = False, num_threads: int = 1, parallel: bool = False, device: str = "cpu"):
        self.per_epoch, self.chains, self.pools = per_epoch, [], []
        if parallel and len(recipes) > 1:
            self.pools = [ProcessPoolExecutor(1, mp_context=_worker_context(), initializer=_worker_start,
                                              initargs=(x, num_classes, r, num_threads, device)) for r in recipes]
        else:
            self.chains = [prequential.chain_for(x, num_classes, r, device) for r in recipes]

    def next_blocks(self, y_prefix: torch.Tensor, t_next: int) -> list:
        """Each chain's next block, in the order of the recipes: (float32 numpy raw logits, temperature), or with
        ``per_epoch`` the list of the calibrated logits after each epoch."""
        if not self.pools:
            return [_numpy(_next_block(c, y_prefix, t_next, self.per_epoch)) for c in self.chains]
        prefix = np.ascontiguousarray(torch.as_tensor(y_prefix).numpy())
        futures = [p.submit(_worker_next_block, prefix, t_next, self.per_epoch) for p in self.pools]
        return [f.result() for f in futures]

    def close(self) -> None:
        for p in self.pools:
            p.shutdown(cancel_futures=True)
        self.pools = []
