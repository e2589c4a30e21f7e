"""Training batches as a pure function of the run's seed and the step, made ahead by workers.

Batch ``k`` (clean windows, noisy windows aligned as the config says, noise maps) depends only
on ``(seed, k)``: the patch sampler and the noise generator are reseeded at every step. Any
number of worker processes (``data.workers``) gives the same stream, and a resumed run needs
nothing but its step.

Why workers: on two CPU cores a batch of eight 96 px windows takes 0.13 s to make (sample 0.01,
noise with x264 0.04, DIS flow 0.08) against 0.88 s for the network's step; one worker makes
the next batch while the network steps (0.93 s a step against 1.03 s). On a GPU the step takes
milliseconds and one process would leave the GPU idle most of the time: give the workers most
of the cores.
"""
from __future__ import annotations

import signal
from typing import Iterator

import cv2
import numpy as np
import torch

from ..align import align_windows, make_aligner
from ..noise.synth import synthesize
from .config import TrainConfig
from .data import FrameBank, PatchSampler

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]   # clean (N,T,3,H,W), noisy (N,T,3,H,W), map (N,1,H,W)


def step_seed(seed: int, step: int, stream: int) -> int:
    """A 63-bit seed for one random stream (0: patches, 1: noise) of one step of a run.

    >>> step_seed(1, 5, 0) == step_seed(1, 5, 0), step_seed(1, 5, 0) == step_seed(1, 6, 0)
    (True, False)
    """
    words = np.random.SeedSequence([seed, step, stream]).generate_state(2, dtype=np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


class BatchMaker:
    """Makes the batch of any step of a training config from a :class:`FrameBank`, on the CPU.

    >>> maker = BatchMaker(bank, cfg)                                          # doctest: +SKIP
    >>> clean, noisy, noise_map = maker.make(0)                                # doctest: +SKIP
    """

    def __init__(self, bank: FrameBank, cfg: TrainConfig):
        self.cfg = cfg
        self.sampler = PatchSampler(bank, cfg.data, cfg.motion, seed=cfg.seed)
        self.aligner = make_aligner(cfg.align, torch.device("cpu"))

    def make(self, step: int) -> Batch:
        """The clean windows, the noisy windows (aligned when the config aligns) and their maps."""
        self.sampler.generator.manual_seed(step_seed(self.cfg.seed, step, 0))
        clean = self.sampler.sample(self.cfg.batch)
        noisy, noise_map = synthesize(clean, self.cfg.noise, torch.Generator().manual_seed(step_seed(self.cfg.seed, step, 1)))
        if self.aligner is not None:
            noisy = align_windows(noisy, self.aligner)
        return clean, noisy, noise_map


class _Steps(torch.utils.data.IterableDataset):
    """Steps ``start .. stop - 1``, all of them in this process, or shared round-robin by a
    loader's workers (which the loader interleaves back into step order)."""

    def __init__(self, maker: BatchMaker, start: int, stop: int):
        self.maker, self.start, self.stop = maker, start, stop

    def __iter__(self) -> Iterator[Batch]:
        info = torch.utils.data.get_worker_info()
        first, every = (0, 1) if info is None else (info.id, info.num_workers)
        for step in range(self.start + first, self.stop, every):
            yield self.maker.make(step)


def _worker_init(_: int) -> None:
    # One thread each: the workers share the cores with the training process (OpenCV's count
    # comes from the fork, see batch_stream). Ctrl-C and SIGTERM reach the whole process group;
    # the training process stops the run cleanly and then shuts the workers down, so they must
    # not die first.
    torch.set_num_threads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def batch_stream(maker: BatchMaker, start: int, stop: int, workers: int = 0) -> Iterator[Batch]:
    """The batches of steps ``start .. stop - 1`` in order: made in this process (``workers``
    0) or by that many worker processes, two batches ahead each."""
    if workers <= 0:
        return iter(_Steps(maker, start, stop))
    loader = torch.utils.data.DataLoader(_Steps(maker, start, stop), batch_size=None, num_workers=workers,
                                         prefetch_factor=2, worker_init_fn=_worker_init)
    # The workers are forked when the iterator is made. A child forked while OpenCV's thread
    # pool runs (DIS flow used it in this process) hangs in its first parallel call, or in
    # cv2.setNumThreads: the pool is stopped (one thread) around the fork, then restored here.
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        return iter(loader)
    finally:
        cv2.setNumThreads(threads)
