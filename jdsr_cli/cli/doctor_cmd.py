"""``jdsr doctor``: versions, devices, threads and where models are cached, for bug reports."""

from __future__ import annotations

import os
import platform
from importlib import metadata

from jdsr_cli.cli.console import make_console

_PACKAGES = ("torch", "numpy", "pillow", "opencv-python-headless", "av", "huggingface-hub", "safetensors", "typer",
             "rich")


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def doctor() -> None:
    """Print versions, devices, threads and cache locations."""
    import torch
    from rich.table import Table

    from jdsr_cli import __version__
    from jdsr_cli.engine.device import cpu_bf16_features, cpu_bf16_is_native, mps_available, resolve_device

    table = Table(title="jdsr doctor", show_header=False)
    table.add_column("item")
    table.add_column("value")
    table.add_row("jdsr", __version__)
    table.add_row("python", f"{platform.python_version()} ({platform.platform()})")
    for package in _PACKAGES:
        table.add_row(package, _version(package))
    table.add_row("cpu threads (torch)", f"{torch.get_num_threads()} of {os.cpu_count()} cores")
    table.add_row("host allocator", _allocator_summary())
    table.add_row("cpu sharing", _cpu_share_summary())
    table.add_row("cpu bf16", _cpu_bf16_summary(cpu_bf16_features(), cpu_bf16_is_native()))
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            bf16 = "bf16" if torch.cuda.is_bf16_supported() else "no bf16"
            table.add_row(f"cuda:{index}", f"{props.name}, {props.total_memory / 2**30:.1f} GiB, {bf16}")
        table.add_row("cuda runtime", str(torch.version.cuda))
    else:
        table.add_row("cuda", f"not available (torch build: {torch.version.cuda or 'cpu'})")
    table.add_row("mps", "available" if mps_available() else "not available")
    table.add_row("device auto", str(resolve_device("auto")))
    table.add_row("video encoders", _video_encoders())
    from huggingface_hub import constants

    from jdsr_cli.checkpoints.hub import without_credentials

    table.add_row("HF cache", str(constants.HF_HUB_CACHE))
    table.add_row("HF offline", "yes" if constants.HF_HUB_OFFLINE else "no")
    table.add_row("HF endpoint", without_credentials(str(constants.ENDPOINT)))
    try:
        from importlib.resources import files

        table.add_row("bundled weights", str(files("jdsr_weights")))
    except ModuleNotFoundError:
        table.add_row("bundled weights", "missing (reinstall jdsr)")
    make_console().print(table)


def _video_encoders() -> str:
    """The encoders `jdsr upscale clip.mp4 --video-codec` can use here (each one opened to be sure)."""
    try:
        from jdsr_cli.io.video_encode import available_encoders
    except ImportError as error:  # PyAV missing or broken: say so instead of failing the whole report
        return f"none (PyAV: {error})"
    return ", ".join(available_encoders()) or "none"


def _allocator_summary() -> str:
    from jdsr_cli.process.host_allocator import OPT_OUT_VARIABLE, tune_host_allocator

    tuning = tune_host_allocator()
    if tuning.reason:
        return f"system default ({tuning.reason})"
    kept = "glibc keeps freed blocks" if tuning.glibc_keeps_freed_memory else "glibc untouched (no mallopt)"
    pages = "torch huge pages on" if tuning.torch_huge_pages else "torch huge pages off"
    return f"{kept}, {pages} ({OPT_OUT_VARIABLE}=1 turns both off)"


def _cpu_share_summary() -> str:
    from jdsr_cli.process.cpu_share import OPT_OUT_VARIABLE, off_reason

    reason = off_reason()
    if reason is not None:
        return f"off ({reason}): upscale, downscale and eval keep torch's thread count"
    return (f"on: upscale, downscale and eval use one thread per core other processes leave idle "
            f"({OPT_OUT_VARIABLE}=0 turns it off)")


def _cpu_bf16_summary(features: list[str] | None, native: bool) -> str:
    """Which native bf16 units this CPU has (what `--precision auto` acts on), or why bf16 is best avoided here."""
    if not native:
        return "emulated: use fp32 on this CPU (bf16 ran ~9× slower than fp32 on such a CPU)"
    named = " and ".join(features or []) or "oneDNN reports it"
    return f"native ({named}): --precision auto runs bf16-safe models in bf16"
