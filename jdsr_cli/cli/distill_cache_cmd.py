"""``jdsr distill-cache``: a teacher's outputs on degraded patches, made once, for students to train from."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def distill_cache(
    data: Annotated[Path, typer.Argument(help="Folder tree of images: HR ones the patches are cut and degraded from, or "
                                      "(with --degradation none) photos as they are.")],
    teacher: Annotated[str, typer.Option("--teacher", help="The model whose outputs are the targets, as --model takes "
                                         "it (a x4 teacher serves a x2 cache through a MATLAB-bicubic shrink).")],
    out: Annotated[Path, typer.Option("-o", "--output", help="The cache folder (lr/, target/, recipe.json); an existing "
                                      "cache of the same recipe grows to --pairs.")],
    scale: Annotated[int, typer.Option("--scale", "-s", help="2, 3 or 4.")] = 4,
    pairs: Annotated[int, typer.Option("--pairs", help="How many patch pairs the cache holds when done.")] = 10000,
    patch_size: Annotated[int, typer.Option("--patch-size", help="LR patch side.")] = 64,
    degradation: Annotated[str, typer.Option(
        "--degradation", metavar="bicubic|realistic|none", help="How the LR is made: MATLAB bicubic or the realistic "
        "chain from an HR, or none: cut from the images as they are (real photos; the teacher needs no HR)."
    )] = "realistic",
    clean_prob: Annotated[float, typer.Option("--clean-prob", help="Share of patches kept as clean MATLAB-bicubic LR "
                                              "(realistic only).")] = 0.2,
    seed: Annotated[int, typer.Option("--seed", help="Pair i is the run's training sample i for this seed.")] = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Patches per teacher forward.")] = 8,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or mps.")] = "auto",
    precision: Annotated[str, typer.Option("--precision", help="auto, fp32, fp16 or bf16 (the teacher's).")] = "auto",
) -> None:
    """Run a costly teacher once per patch and keep (LR, output) pairs; train students from them anywhere.

    Example: jdsr distill-cache photos/ --teacher realesrgan-x4plus.param -s 4 --pairs 20000 -o cache/x4
    then:    jdsr train cache/x4/target --lr-dir cache/x4/lr -s 4 --init photo-faithful-x4 --patch-size 48 --out runs/sharp
    """
    from jdsr_cli.cli.console import make_console
    from jdsr_cli.errors import UsageError
    from jdsr_cli.ops.degrade import Degradation
    from jdsr_cli.training.teacher_cache import make_distill_cache

    if degradation not in ("bicubic", "realistic", "none"):
        raise UsageError(f"--degradation {degradation!r}: choose bicubic, realistic or none")
    settings = Degradation.from_table({"clean_prob": clean_prob}) if degradation == "realistic" else None
    console = make_console()
    step = max(1, pairs // 100)

    def on_batch(made: int, todo: int) -> None:
        if made % step < batch_size or made == todo:
            console.print(f"{made}/{todo} pairs", markup=False)

    report = make_distill_cache(data, teacher, out, scale=scale, pairs=pairs, patch_size=patch_size, seed=seed,
                                degradation=settings, as_is=degradation == "none", device=device, precision=precision,
                                batch_size=batch_size, on_batch=on_batch)
    console.print(f"{report.folder}: {report.made} pairs made ({report.seconds:.0f} s), {report.total} in all; train "
                  f"with: jdsr train {report.folder / 'target'} --lr-dir {report.folder / 'lr'} -s {scale}", markup=False)
