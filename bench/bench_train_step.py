"""One training step of the paper's recipe, before and after the CNN changes, side by side.

A step: batch 32 x 300 frames x 128 Mel bins (3 s crops, no padding), forward, class-
weighted cross-entropy + 0.3 x center loss, backward, Adam. "before" runs the same
current code with the two changes undone in place: ATen's max-pool (which also computes
argmax indices) instead of ``pyser.model._max_pool_2x2``, and the time masks applied even
when no row is padded. Rows take turns; medians over the timed steps.

    python bench/bench_train_step.py [--steps 20] [--threads 1 2]
"""

import argparse
import platform
import subprocess
import time

import numpy as np
import torch
import torch.nn.functional as F

import pyser.model as model_module
from pyser.model import CRNN, cnn_output_length

BATCH, FRAMES, BINS = 32, 300, 128


def forward_gflop() -> float:
    """Multiply-adds x 2 of the convolutions, GRUs and FC layers for one batch."""
    t, f, macs = FRAMES, BINS, 0
    c_in = 1
    for kind, k, s, c_out in model_module.CNN_LAYERS:
        t, f = (t - k) // s + 1, (f - k) // s + 1
        if kind == "conv":
            macs += t * f * c_out * c_in * k * k
            c_in = c_out
    steps, width = cnn_output_length(FRAMES), cnn_output_length(BINS) * c_in
    macs += 2 * steps * 3 * 128 * (width + 128) + 256 * 64 + 64 * 4
    return 2 * macs * BATCH / 1e9


def make_step(before: bool):
    torch.manual_seed(0)
    net = CRNN()
    opt = torch.optim.Adam(net.parameters(), lr=3e-4)
    weights = torch.ones(4)
    centers = torch.zeros(4, 64)
    x = torch.randn(BATCH, FRAMES, BINS) * 10 - 40
    lengths = torch.full((BATCH,), FRAMES)
    y = torch.randint(0, 4, (BATCH,))

    def step() -> None:
        saved = model_module._max_pool_2x2, model_module._mask_time
        if before:
            model_module._max_pool_2x2 = lambda h: F.max_pool2d(h, 2, 2)
            model_module._mask_time = lambda h, n, padded=True: saved[1](h, n, True)
        try:
            logits, z = net.forward_with_embedding(x, lengths)
        finally:
            model_module._max_pool_2x2, model_module._mask_time = saved
        ce = F.cross_entropy(logits, y, weight=weights)
        center = ((z - centers[y]) ** 2).sum(1).mean()
        loss = ce + 0.3 * center
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines()
                    if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    gflop = 3 * forward_gflop()  # forward + backward ~ 3 forwards
    print(f"CPU: {cpu_name()}; torch {torch.__version__}; about {gflop:.0f} GFLOP a step")
    print("| threads | before (ms/step) | after (ms/step) | speed-up | after GFLOP/s |")
    print("|---:|---:|---:|---:|---:|")
    for threads in args.threads:
        torch.set_num_threads(threads)
        steps = {"before": make_step(True), "after": make_step(False)}
        times = {k: [] for k in steps}
        for name in steps:  # warm-up
            for _ in range(2):
                steps[name]()
        for r in range(args.steps):
            for name in (list(steps) if r % 2 == 0 else list(steps)[::-1]):
                t0 = time.perf_counter()
                steps[name]()
                times[name].append(time.perf_counter() - t0)
        b, a = np.median(times["before"]), np.median(times["after"])
        print(f"| {threads} | {b * 1e3:.0f} | {a * 1e3:.0f} | {b / a:.2f}× | {gflop / a:.0f} |")


if __name__ == "__main__":
    main()
