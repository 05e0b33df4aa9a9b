"""One training step of the paper's recipe, before and after this session's changes.

A step: batch 32 x 300 frames x 128 Mel bins (3 s crops, no padding), forward, class-
weighted cross-entropy + 0.3 x center loss, backward, Adam. Rows:

* before: the current code with the CNN changes undone in place (ATen's max-pool, time
  masks applied even when no row is padded), float32, contiguous layout: the old recipe;
* fp32: the current code, contiguous layout;
* fp32 channels-last: ``channels_last = true`` (the training default);
* bf16 channels-last: ``precision = "bf16"`` as well (autocast of the forward pass; on CPUs
  with AMX this reaches oneDNN's AMX kernels, on others it is emulated and slow).

Rows take turns; medians over the timed steps.

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


def make_step(before: bool, channels_last: bool = False, bf16: bool = False):
    torch.manual_seed(0)
    net = CRNN()
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
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
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits, z = net.forward_with_embedding(x, lengths)
            logits, z = logits.float(), z.float()
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
    rows = {
        "before": lambda: make_step(True),
        "fp32": lambda: make_step(False),
        "fp32 channels-last": lambda: make_step(False, channels_last=True),
        "bf16 channels-last": lambda: make_step(False, channels_last=True, bf16=True),
    }
    print("| threads | " + " | ".join(f"{r} (ms/step)" for r in rows)
          + " | speed-up over before | best GFLOP/s |")
    print("|---:|" + "---:|" * (len(rows) + 2))
    for threads in args.threads:
        torch.set_num_threads(threads)
        steps = {name: make() for name, make in rows.items()}
        times: dict[str, list[float]] = {name: [] for name in steps}
        for step in steps.values():  # warm-up
            for _ in range(2):
                step()
        names = list(steps)
        for r in range(args.steps):
            k = r % len(names)
            for name in names[k:] + names[:k]:
                t0 = time.perf_counter()
                steps[name]()
                times[name].append(time.perf_counter() - t0)
        med = {name: float(np.median(t)) for name, t in times.items()}
        speedups = " / ".join(f"{med['before'] / med[n]:.2f}×" for n in names[1:])
        print(f"| {threads} | " + " | ".join(f"{med[n] * 1e3:.0f}" for n in names)
              + f" | {speedups} | {gflop / min(med.values()):.0f} |")


if __name__ == "__main__":
    main()
