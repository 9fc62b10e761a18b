"""Finding a batch's input files: explicit files, folders (optionally recursive) and glob patterns.

Two rules protect users from themselves: inputs are never taken from inside the output folder when it
lies within a folder being searched (so a re-run does not upscale its own previous outputs), and a
path that exists but is not a regular file (a FIFO, a device) is refused by name instead of being
reported as missing or read forever.
"""

from __future__ import annotations

import glob
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from jdsr_cli.errors import UsageError
from jdsr_cli.io.formats import INPUT_EXTENSIONS
from jdsr_cli.io.video import VIDEO_EXTENSIONS

_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class InputFile:
    """An input image and its path relative to the folder it was found in (for mirroring)."""

    path: Path
    relative: Path


def collect_inputs(
    specs: Iterable[str], *, recursive: bool = False, output_dir: Path | None = None
) -> list[InputFile]:
    """Expand files, folders and glob patterns into a sorted, de-duplicated list of inputs.

    A file named explicitly is always attempted; inside folders and globs only known image
    extensions count, and nothing under ``output_dir`` is taken when ``output_dir`` lies strictly
    inside a folder being searched. A path that does not exist is a usage error, reported before any work.
    """
    excluded = _resolved(output_dir) if output_dir is not None else None
    found: dict[Path, InputFile] = {}
    for spec in specs:
        for item in _expand(spec, recursive, excluded):
            found.setdefault(item.path.resolve(), item)
    return sorted(found.values(), key=lambda item: str(item.path))


def _resolved(path: Path) -> Path:
    return path.expanduser().resolve()


def _expand(spec: str, recursive: bool, excluded: Path | None) -> list[InputFile]:
    path = Path(spec).expanduser()
    if path.is_file():
        return [InputFile(path, Path(path.name))]
    if path.is_dir():
        skip = excluded if excluded is not None and _strictly_inside(excluded, path.resolve()) else None
        pattern = "**/*" if recursive else "*"
        return [
            InputFile(p, p.relative_to(path))
            for p in sorted(path.glob(pattern))
            if _is_image_file(p) and not p.name.startswith(".") and not (skip and _strictly_inside(p.resolve(), skip))
        ]
    if path.exists():
        raise UsageError(f"{spec}: not a regular file ({_kind(path)}); give an image file or a folder")
    if _GLOB_CHARS & set(spec):
        matches = _recursive_glob(path) if recursive and "**" in spec else \
            [Path(m) for m in sorted(glob.glob(str(path)))]
        return [InputFile(p, Path(p.name)) for p in matches if _is_image_file(p)]
    raise UsageError(f"{spec}: no such file or folder")


def _recursive_glob(pattern: Path) -> list[Path]:
    """A ``**`` pattern walked as a folder scan is: pathlib does not follow symlinked folders under ``**``
    (``glob.glob(recursive=True)`` does, so two links to ``.`` never end), and hidden names are skipped as
    ``glob`` skips them."""
    parts = pattern.parts
    first = next(i for i, part in enumerate(parts) if _GLOB_CHARS & set(part))
    root = Path(*parts[:first]) if first else Path(".")
    rest = Path(*parts[first:])
    return sorted(p for p in root.glob(str(rest))
                  if not any(part.startswith(".") for part in p.relative_to(root).parts))


def _is_image_file(path: Path) -> bool:
    """An image or a video file (by extension): what a folder or a glob contributes."""
    return path.is_file() and (path.suffix.lower() in INPUT_EXTENSIONS or path.suffix.lower() in VIDEO_EXTENSIONS)


def _strictly_inside(path: Path, folder: Path) -> bool:
    return path != folder and folder in path.parents


def _kind(path: Path) -> str:
    mode = path.stat().st_mode
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a file or folder"


def shard_for_rank(items: list, rank: int, world: int) -> list:  # type: ignore[type-arg]
    """Under ``torchrun``, rank r of w takes every w-th item (sorted order), so the ranks never collide."""
    return items[rank::world] if world > 1 else items
