"""``jdsr models import``: any model ``--model`` reads (an ncnn pair, a community ``.pth``) as a jdsr checkpoint.

The result is a normal checkpoint folder (``model.safetensors`` + ``config.json``): it loads without the
original files, without re-reading a graph or guessing from tensor names, and carries where it came from.
"""

from __future__ import annotations

from pathlib import Path

from jdsr_cli.checkpoints.resolve import resolve_model
from jdsr_cli.checkpoints.save import save_checkpoint
from jdsr_cli.errors import UsageError


def import_model(source: str, out: Path, *, name: str | None = None) -> Path:
    """Load ``source`` as ``--model`` would and save it into the new folder ``out``; return ``out``."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"-o {out}: already exists and is not an empty folder (nothing was written)")
    loaded = resolve_model(source, scale=None)
    origin = {"imported_from": Path(source).name, "imported_format": loaded.meta.get("config_source", "")}
    return save_checkpoint(out, loaded.model, loaded.config, name=name or loaded.name, extra=origin)
