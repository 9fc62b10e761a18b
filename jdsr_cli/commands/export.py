"""``jdsr models export``: where the checked ONNX file goes (``-o``, its default name) and that nothing is replaced
unless asked; the export and its parity check are the engine's (:mod:`jdsr_cli.engine.onnx_export`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from jdsr_cli.engine.onnx_export import ExportReport, export_onnx
from jdsr_cli.engine.onnx_runtime import DEFAULT_OPSET
from jdsr_cli.errors import UsageError
from jdsr_cli.io.atomic import no_clobber
from jdsr_cli.io.destinations import check_writable_file

if TYPE_CHECKING:
    from jdsr_cli.checkpoints.load import LoadedModel

FORMATS = ("onnx",)


def default_path(loaded: LoadedModel, fp16: bool) -> Path:
    """``NAME[-fp16].onnx`` in the current folder. The name comes from the model's config.json, i.e. from whoever
    made the file: only its last component is used (never a folder), and ``.``, ``..`` or nothing fall back to the
    source's own stem."""
    name = _file_stem(loaded.name) or _file_stem(Path(str(loaded.source)).stem) or "model"
    return Path(f"{name}{'-fp16' if fp16 else ''}.onnx")


def _file_stem(name: str) -> str:
    last = str(name or "").replace("\\", "/").rstrip("/").rsplit("/", 1)[-1].strip()
    return "" if last in ("", ".", "..") else last


def export_model(loaded: LoadedModel, path: Path | None = None, *, opset: int = DEFAULT_OPSET, fp16: bool = False,
                 overwrite: bool = False) -> ExportReport:
    """Check the destination (before the export's seconds of work), then export, check and write it.

    An existing file is refused unless ``overwrite``, and one that appears during the export is not replaced.
    """
    target = path or default_path(loaded, fp16)
    if target.is_dir():  # -o FOLDER: the default name inside it
        target = target / default_path(loaded, fp16).name
    if target.suffix.lower() != ".onnx":  # never write a model over a photo named by a slip of -o
        raise UsageError(f"-o {target}: an ONNX model's file name ends in .onnx")
    check_writable_file(target, "-o", example="model.onnx")
    if not overwrite and os.path.lexists(target.expanduser()):
        raise UsageError(f"{target}: exists; nothing was written (use --overwrite to replace it)")
    with no_clobber(not overwrite):
        return export_onnx(loaded, target, opset=opset, fp16=fp16)
