"""Device and precision selection, validated before any image is touched.

Rules: ``auto`` picks CUDA, then Apple MPS, then the CPU. Precision ``auto`` is bf16 (or fp16 when the
GPU lacks bf16) on CUDA where the architecture allows it, and fp32 elsewhere. fp16 is never used on the
CPU: many CPU kernels have no half implementation (Real-ESRGAN#319).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from jdsr_cli.errors import DeviceError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name: str = "auto") -> torch.device:
    """Turn ``auto | cpu | cuda | cuda:N | mps`` into a torch device that exists on this machine."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"--device {name!r}: not a device name (use auto, cpu, cuda, cuda:N or mps)") from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {name}: CUDA is not available (torch {torch.__version__} build, no GPU found)")
        index = device.index if device.index is not None else torch.cuda.current_device()
        count = torch.cuda.device_count()
        if not 0 <= index < count:
            raise DeviceError(f"--device {name}: no such GPU (this machine has {count}: cuda:0..cuda:{count - 1})")
        return torch.device("cuda", index)
    if device.type == "mps":
        if not mps_available():
            raise DeviceError(f"--device {name}: Apple MPS is not available on this machine")
        return device
    raise DeviceError(f"--device {name}: unsupported device type {device.type!r} (use auto, cpu, cuda[:N], mps)")


@dataclass(frozen=True)
class Precision:
    """The compute dtype for a run; ``dtype is torch.float32`` means no autocast."""

    name: str
    dtype: torch.dtype

    @property
    def is_reduced(self) -> bool:
        return self.dtype != torch.float32


def resolve_precision(requested: str, device: torch.device, *, supports_fp16: bool, supports_bf16: bool,
                      auto_bf16: bool = True) -> Precision:
    """Choose the compute precision for ``device`` and an architecture's half-precision flags: "auto" is bf16
    (else fp16) on CUDA, bf16 on a CPU with native bf16, fp32 elsewhere, each only where the architecture is safe.
    ``auto_bf16`` False (a model measured to lose too much in bf16) keeps "auto" off bf16: fp16 on CUDA where
    safe, else fp32."""
    requested = (requested or "auto").lower()
    if requested not in PRECISIONS:
        raise DeviceError(f"--precision {requested!r}: choose one of {', '.join(PRECISIONS)}")
    if requested == "auto":
        if device.type == "cuda":
            if supports_bf16 and auto_bf16 and torch.cuda.is_bf16_supported():
                return Precision("bf16", torch.bfloat16)
            if supports_fp16:
                return Precision("fp16", torch.float16)
        if device.type == "cpu" and supports_bf16 and auto_bf16 and cpu_bf16_is_native():
            return Precision("bf16", torch.bfloat16)  # about 2× fp32's speed where the CPU has it (issue 16)
        return Precision("fp32", torch.float32)
    if requested == "fp16":
        if device.type == "cpu":
            raise DeviceError("--precision fp16: not supported on the CPU (use bf16 or fp32)")
        if not supports_fp16:
            raise DeviceError("--precision fp16: this architecture is not fp16-safe (use bf16 or fp32)")
    if requested == "bf16":
        if not supports_bf16:
            raise DeviceError("--precision bf16: this architecture is not bf16-safe (use fp32)")
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise DeviceError(f"--precision bf16: {torch.cuda.get_device_name(device)} has no bf16 support (use fp16)")
    return Precision(requested, _DTYPES[requested])


def free_memory_bytes(device: torch.device) -> int | None:
    """Free memory usable for activations on ``device``, or None when it cannot be known."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "cpu":
        try:
            return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            return None
    return None


def cpu_bf16_is_native() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX). Without it oneDNN emulates bf16 and
    a bf16 training step ran about 9× slower than fp32 (IMDN ×4 on an AVX2 EPYC: 5.4 s against 0.57 s).

    Read from the kernel's CPU flags where there are any (Linux), else oneDNN's own check; unknown is False."""
    features = cpu_bf16_features()
    if features is not None:
        return bool(features)
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


#: the CPU flags that give native bf16, by the name people know them by
_BF16_FLAGS = {"amx_bf16": "AMX-BF16", "avx512_bf16": "AVX512-BF16"}


def cpu_bf16_features() -> list[str] | None:
    """Which native bf16 units the CPU flags name (AMX-BF16: bf16 convs ~7× fp32 on a Xeon here; AVX512-BF16), [] for
    none, None where there are no flags to read (off Linux/x86)."""
    flags = _cpu_flags()
    return None if flags is None else [name for flag, name in _BF16_FLAGS.items() if flag in flags]


def _cpu_flags() -> set[str] | None:
    """The x86 feature flags of /proc/cpuinfo (None off Linux/x86)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        return None
    return None


CPU_BF16_WARNING = ("this CPU has no native bf16 (AVX512-BF16 or AMX), so --precision bf16 runs about 9× slower "
                    "than fp32 here; use --precision fp32")


def slow_bf16_warning(device: torch.device, precision: str) -> str | None:
    """``CPU_BF16_WARNING`` for a bf16 run on a CPU that emulates bf16; None where bf16 is native or not asked for."""
    if device.type == "cpu" and precision == "bf16" and not cpu_bf16_is_native():
        return CPU_BF16_WARNING
    return None
