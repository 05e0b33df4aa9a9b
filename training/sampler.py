"""The training batches: fixed-size random batches from seeded epoch permutations."""

from __future__ import annotations

import numpy as np

__all__ = ["BatchSampler"]


class BatchSampler:
    """Fixed-size random batches from a stream of seeded epoch permutations.

    A batch may span two epochs, so every batch has exactly ``batch_size`` examples
    (unless the training set is smaller). ``state_dict`` captures everything needed to
    continue the stream exactly.
    """

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        if n < 1:
            raise ValueError("empty training set")
        self.n = n
        self.batch_size = min(batch_size, n)
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.perm = self.rng.permutation(n)
        self.pos = 0
        self.epoch = 0

    def next(self) -> np.ndarray:
        out = []
        need = self.batch_size
        while need:
            take = min(need, self.n - self.pos)
            out.append(self.perm[self.pos : self.pos + take])
            self.pos += take
            need -= take
            if self.pos == self.n:
                self.perm = self.rng.permutation(self.n)
                self.pos = 0
                self.epoch += 1
        return np.concatenate(out)

    def state_dict(self) -> dict:
        return {
            "rng": self.rng.bit_generator.state,
            "perm": self.perm.tolist(),
            "pos": self.pos,
            "epoch": self.epoch,
            "n": self.n,
            "batch_size": self.batch_size,
        }

    def load_state_dict(self, state: dict) -> None:
        if state["n"] != self.n or state["batch_size"] != self.batch_size:
            raise ValueError("checkpoint batch sampler does not match this training set")
        self.rng.bit_generator.state = state["rng"]
        self.perm = np.asarray(state["perm"], dtype=np.int64)
        self.pos = int(state["pos"])
        self.epoch = int(state["epoch"])
