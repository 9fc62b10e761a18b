"""``jdsr models list | info | download | inspect | export | import | publish``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from jdsr_cli.cli.console import make_console

app = typer.Typer(help="List, describe, download, inspect, export and publish models.", no_args_is_help=True)

BENCHMARK_SETS = ("Set5", "Set14", "B100")


def _set_psnr(metrics: dict[str, Any] | None, name: str) -> str:
    figure = (metrics or {}).get(name)
    return f"{figure['psnr']:.2f}" if isinstance(figure, dict) and "psnr" in figure else "-"


@app.command("list")
def list_models(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """Bundled and downloadable models, with their measured PSNR."""
    from rich.table import Table

    from jdsr_cli.checkpoints.manifest import load_manifest
    from jdsr_cli.training.registry import method_tags

    manifest = load_manifest()
    entries = []
    for entry in manifest.entries:
        training = manifest.training_record(entry)
        entries.append({**entry.to_dict(), **(_how_trained(training) if training is not None else {})})
    console = make_console()
    if as_json:
        console.print_json(json.dumps(entries))
        return
    if not entries:
        console.print("no models in the manifest", markup=False)
        return
    from rich import box

    table = Table(
        title="jdsr models", box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), show_edge=False, title_justify="left")
    # the name and the figures never shrink; the descriptive columns give way on a narrow terminal
    table.add_column("name", no_wrap=True, min_width=max(len(e["name"]) for e in entries))
    table.add_column("pair", no_wrap=True, overflow="ellipsis", max_width=6)
    table.add_column("arch", no_wrap=True, overflow="ellipsis", max_width=6)
    table.add_column("scale", no_wrap=True, min_width=2)
    table.add_column("trained", no_wrap=True, overflow="ellipsis")
    table.add_column("default", no_wrap=True, overflow="ellipsis")
    for name in BENCHMARK_SETS:
        table.add_column(name, justify="right", no_wrap=True, min_width=5)
    show_source = any(e["source"] != "bundled" for e in entries)
    if show_source:
        table.add_column("source", no_wrap=True, overflow="ellipsis")
    tags = method_tags()  # `trained`: each method's short tag, for 80 columns
    for e in entries:
        metrics = e.get("metrics")
        scale = ("÷" if e.get("role") == "downscale" else "×") + str(e["scale"])
        method = tags.get(e.get("method", ""), e.get("method", ""))
        if e.get("faithful"):
            method = "sharp"  # its recipe is a teacher's look, whatever the method that got it there
        elif e.get("degradation") == "realistic":
            method += " real"
        table.add_row(
            e["name"], e.get("pair") or "", e["arch"], scale, method, "yes" if e.get("default_for_scale") else "",
            *(_set_psnr(metrics, name) for name in BENCHMARK_SETS), *([e["source"]] if show_source else []),
        )
    console.print(table)
    console.print(
        "×s enlarges, ÷s shrinks; PSNR-Y dB, crop = scale, MATLAB-bicubic LR; a superior-LR pair's figure is its round trip "
        "(HR → its downscaler → its upscaler); trained with `jdsr train --method` supervised (L1), superior-lr "
        "(SLR) or jdsr (JDSR), or `jdsr distill` (KD); real: on realistic LR (blur, noise, JPEG): a photo model, "
        "meant for real photos and judged on realistic LR; sharp: a photo model distilled from RealESRGAN_x4plus's look "
        "(judged by NIQE, its PSNR lower by design). "
        "More (the whole recipe): `jdsr models info NAME`.", markup=False,
    )


def _how_trained(training: dict[str, Any]) -> dict[str, str]:
    """The training method and, when not MATLAB bicubic, how its LR was made (a photo model's realistic chain)."""
    from jdsr_cli.checkpoints.lineage import method_of

    how = {"method": method_of(training)}
    degradation = ((training.get("config") or {}).get("degradation") or {}).get("mode")
    if degradation is not None and degradation != "bicubic":
        how["degradation"] = str(degradation)
    return how


@app.command("info")
def info(name: str = typer.Argument(..., help="A name from `jdsr models list`.")) -> None:
    """Everything the manifest and the checkpoint say about one model."""
    from jdsr_cli.checkpoints.lineage import training_summary
    from jdsr_cli.checkpoints.manifest import load_manifest

    manifest = load_manifest()
    entry = manifest.require(name)
    training = manifest.training_record(entry)
    facts = {**entry.to_dict(), **({"training": training_summary(training)} if training is not None else {})}
    make_console().print_json(json.dumps(facts, default=str))


@app.command("download")
def download(name: str = typer.Argument(..., help="A manifest name or hf://owner/repo[@rev]/path.")) -> None:
    """Fetch a Hub-hosted model into the Hugging Face cache (checked against its sha256)."""
    from jdsr_cli.checkpoints.hub import download_model

    path = download_model(name)
    make_console().print(f"{name}: {path}", markup=False)


@app.command("inspect")
def inspect(path: Path = typer.Argument(..., help="A checkpoint folder, .safetensors, .pth or .pt file.")) -> None:
    """Architecture, scale, parameters, precision support and checksum of a checkpoint file."""
    from rich.table import Table

    from jdsr_cli.checkpoints.inspection import inspect_checkpoint

    facts = inspect_checkpoint(path)
    table = Table(title=str(path), show_header=False)
    table.add_column("field")
    table.add_column("value")
    for key, value in facts.items():
        table.add_row(str(key), json.dumps(value) if isinstance(value, (dict, list)) else str(value))
    make_console().print(table)


@app.command("export")
def export(
    model: str = typer.Argument(..., help="What --model takes: a bundled name, a checkpoint or an hf:// reference."),
    fmt: str = typer.Option("onnx", "--format", help="Only onnx for now."),
    opset: int = typer.Option(18, "--opset", help="ONNX opset (at least 18)."),
    fp16: bool = typer.Option(False, "--fp16", help="fp16 weights and input/output (checked to 45 dB PSNR)."),
    out: Path | None = typer.Option(None, "-o", "--output",
                                    help="The .onnx file, or a folder for the default name (<model name>.onnx)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing .onnx file (default: refuse)."),
) -> None:
    """Export a model to ONNX with dynamic height and width, checked against PyTorch before it is written.

    Example: jdsr models export imdn-x4 --format onnx -o imdn-x4.onnx
    """
    from jdsr_cli.checkpoints.resolve import resolve_model
    from jdsr_cli.commands.export import FORMATS, export_model
    from jdsr_cli.errors import UsageError

    if fmt.lower() not in FORMATS:
        raise UsageError(f"--format {fmt!r}: choose {', '.join(FORMATS)}")
    report = export_model(resolve_model(model, scale=None), out, opset=opset, fp16=fp16, overwrite=overwrite)
    make_console().print(
        f"{report.path}: ONNX opset {report.opset}, {'fp16' if report.fp16 else 'fp32'}, "
        f"{report.size_bytes / 1e6:.2f} MB; against PyTorch max |Δ| {report.max_abs_diff:.2e}, "
        f"PSNR {report.psnr:.1f} dB; {report.seconds:.0f} s", markup=False)


@app.command("import", no_args_is_help=True)
def import_(
    source: str = typer.Argument(..., metavar="MODEL", help="An ncnn .param (its .bin beside it), a .pth/.pt (old- or "
                                 "new-style ESRGAN, Real-ESRGAN, ...), a .safetensors or anything --model takes."),
    out: Path = typer.Option(..., "-o", "--output", help="The new checkpoint folder (must not exist, or be empty)."),
    name: str | None = typer.Option(None, "--name", help="The model's name in its config.json (default: the file's)."),
) -> None:
    """Convert a model file into a jdsr checkpoint folder (model.safetensors + config.json).

    Example: jdsr models import realesrgan-x4plus.param -o models/realesrgan-x4plus
    """
    from jdsr_cli.checkpoints.resolve import resolve_model
    from jdsr_cli.commands.import_model import import_model

    folder = import_model(source, out, name=name)
    loaded = resolve_model(str(folder), scale=None)
    make_console().print(f"{folder}: {loaded.config.arch} x{loaded.config.scale} ({loaded.name}); use it with "
                         f"--model {folder}", markup=False)


@app.command("publish", no_args_is_help=True)
def publish(
    model: str = typer.Argument(..., metavar="RUN_OR_MODEL", help="A run folder (its best checkpoint), a checkpoint "
                                "folder or file, a name from `jdsr models list` or an hf:// reference."),
    repo: str = typer.Option(..., "--repo", help="The Hub model repository, owner/name (created when missing)."),
    private: bool = typer.Option(False, "--private", help="Create the repository private (an existing one keeps its "
                                 "visibility)."),
    dry_run: Path | None = typer.Option(None, "--dry-run", metavar="DIR", help="Write the files into DIR and upload "
                                        "nothing."),
) -> None:
    """Upload a model to the Hugging Face Hub as one commit: its weights, config.json and a model card.

    The token is huggingface_hub's (HF_TOKEN, or `hf auth login`); HF_ENDPOINT picks another server.
    Prints the commit and the weights/manifest.json entry that serves the model from it.
    Example: jdsr models publish runs/edsr-x2 --repo me/edsr-x2 --dry-run card/
    """
    import tempfile

    from jdsr_cli.checkpoints.hub import hub_endpoint, require_token
    from jdsr_cli.checkpoints.hubref import check_repo_id

    repo = check_repo_id(repo)  # before the model loads: a typo or a missing token costs nothing
    if dry_run is None:
        require_token(repo)
    # after the checks (start-up): publish loads models, so it imports torch
    from jdsr_cli.checkpoints.publish import locate_publishable, prepare_publish_folder, upload_folder

    source = locate_publishable(model)
    console = make_console()
    if dry_run is not None:
        plan = prepare_publish_folder(source, dry_run, repo, private=private)
        console.print(f"dry run: wrote {plan.folder} for {repo}{' (private)' if private else ''}; nothing uploaded:",
                      markup=False)
        _print_files(console, plan.sizes, plan.sha256)
        for warning in plan.warnings:
            console.print(f"warning: {warning}", markup=False)
        console.print(f"review {plan.folder / 'README.md'}, then upload: jdsr models publish {model} --repo {repo}"
                      f"{' --private' if private else ''}", markup=False)
        return
    with tempfile.TemporaryDirectory(prefix="jdsr-publish-") as folder:
        plan = prepare_publish_folder(source, folder, repo, private=private)
        console.print(f"uploading {source.loaded.name} to {repo} on {hub_endpoint()}:", markup=False)
        _print_files(console, plan.sizes, plan.sha256)
        for warning in plan.warnings:
            console.print(f"warning: {warning}", markup=False)
        published = upload_folder(plan)
    console.print(f"published {repo}@{published.commit}: {published.commit_url}", markup=False)
    use = (f"jdsr downscale IMAGE -s {plan.entry['scale']} --method superior" if plan.entry.get("role") == "downscale"
           else "jdsr upscale IMAGE")
    console.print(f"use it: {use} --model {published.uri}", markup=False)
    console.print("manifest entry (weights/manifest.json \"models\"):", markup=False)
    console.print(json.dumps(plan.manifest_entry(published.commit), indent=2), markup=False)


def _print_files(console: Any, sizes: dict[str, int], sha256: str) -> None:
    for name, size in sizes.items():
        digest = f"  sha256 {sha256}" if name.endswith(".safetensors") else ""
        console.print(f"  {name:<18} {size / 1e3:>10.1f} kB{digest}", markup=False)
