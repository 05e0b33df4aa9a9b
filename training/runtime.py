"""Where a training process runs: the device, torch.distributed, and torch's settings.

``setup_runtime`` picks the device (``select_device``) and joins the process group when
the process was started by torchrun (``WORLD_SIZE > 1``); ``torch_settings`` sets the
thread count and deterministic algorithms for a run and restores them afterwards.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from pyser.training.config import TrainConfig

__all__ = ["Runtime", "select_device", "setup_runtime", "shutdown_distributed", "torch_settings"]


@dataclass
class Runtime:
    """Where this process runs: device and torch.distributed rank/world size."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    distributed: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier()


def select_device(name: str, local_rank: int = 0) -> torch.device:
    """The torch device for ``auto | cpu | cuda | cuda:N``.

    ``auto`` is CUDA when available, else the CPU; ``cuda`` is the GPU of ``local_rank``.
    Raises RuntimeError when CUDA is asked for but not available.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {name!r} requested but CUDA is not available")
        if name == "cuda":
            return torch.device("cuda", local_rank)
    return torch.device(name)


def fast_bf16(device: torch.device) -> bool:
    """Whether bfloat16 matmuls and convolutions run natively fast on ``device``: a CUDA GPU
    that supports bf16, or a CPU with AMX or AVX-512 BF16 (on other CPUs bf16 is emulated
    and slower than float32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of a training ``precision`` (``fp32 | bf16 | auto``), or None."""
    if precision == "bf16" or (precision == "auto" and fast_bf16(device)):
        return torch.bfloat16
    return None


def setup_runtime(device: str) -> Runtime:
    """Device, and torch.distributed when started by torchrun (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Runtime(device=select_device(device))
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = select_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return Runtime(dev, rank, world, local_rank, True)


def shutdown_distributed() -> None:
    """Leave the process group, if this process joined one (end of a torchrun process)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


@contextlib.contextmanager
def torch_settings(cfg: TrainConfig, device: torch.device) -> Iterator[None]:
    """Thread count and determinism for the run; restored afterwards."""
    prev_threads = torch.get_num_threads()
    prev_det = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    prev_cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    try:
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        if cfg.deterministic:
            if device.type == "cuda":
                # cuBLAS needs this before its first call to be deterministic.
                os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
                torch.backends.cudnn.deterministic = True
                torch.backends.cudnn.benchmark = False
            # warn_only: an op without a deterministic kernel warns instead of failing a long run.
            torch.use_deterministic_algorithms(True, warn_only=True)
        yield
    finally:
        torch.set_num_threads(prev_threads)
        torch.use_deterministic_algorithms(prev_det, warn_only=prev_warn)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = prev_cudnn
