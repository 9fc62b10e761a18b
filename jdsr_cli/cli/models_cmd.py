"""``jdsr models list | info | download | inspect``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from jdsr_cli.cli.console import error_console, make_console

app = typer.Typer(help="List, describe, download and inspect models.", no_args_is_help=True)


def _fail(error: Exception, code: int = 1) -> typer.Exit:
    error_console().print(f"error: {error}", markup=False)
    return typer.Exit(code)


def _headline_metric(metrics: dict[str, Any] | None) -> str:
    if not metrics:
        return "-"
    convention = str(metrics.get("convention", ""))
    label = convention.split(",")[0] + (" round trip" if "round trip" in convention else "")
    parts = [f"{k} {v['psnr']:.2f}" for k, v in metrics.items() if isinstance(v, dict) and "psnr" in v]
    return f"{label}: " + ", ".join(parts) if parts else "-"


@app.command("list")
def list_models(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """Bundled and downloadable models."""
    from rich.table import Table

    from jdsr_cli.checkpoints.manifest import load_manifest
    from jdsr_cli.errors import JdsrError

    try:
        manifest = load_manifest()
    except JdsrError as error:
        raise _fail(error) from None
    entries = [e.to_dict() for e in manifest.entries]
    console = make_console()
    if as_json:
        console.print_json(json.dumps(entries))
        return
    table = Table(title="jdsr models")
    for column in ("name", "role", "arch", "scale", "source", "default", "quality"):
        table.add_column(column)
    for e in entries:
        role = e.get("role", "upscale") + (f" (pair: {e['pair']})" if e.get("pair") else "")
        table.add_row(
            e["name"], role, e["arch"], f"×{e['scale']}", e["source"], "yes" if e.get("default_for_scale") else "",
            _headline_metric(e.get("metrics")),
        )
    console.print(table)
    if not entries:
        console.print("no models in the manifest", markup=False)


@app.command("info")
def info(name: str = typer.Argument(..., help="A name from `jdsr models list`.")) -> None:
    """Everything the manifest and the checkpoint say about one model."""
    from jdsr_cli.checkpoints.manifest import load_manifest
    from jdsr_cli.errors import JdsrError

    try:
        entry = load_manifest().require(name)
    except JdsrError as error:
        raise _fail(error) from None
    make_console().print_json(json.dumps(entry.to_dict(), default=str))


@app.command("download")
def download(name: str = typer.Argument(..., help="A manifest name or hf://owner/repo[@rev]/path.")) -> None:
    """Fetch a Hub-hosted model into the Hugging Face cache (checked against its sha256)."""
    from jdsr_cli.checkpoints.hub import download_model
    from jdsr_cli.errors import JdsrError

    try:
        path = download_model(name)
    except JdsrError as error:
        raise _fail(error) from None
    make_console().print(f"{name}: {path}", markup=False)


@app.command("inspect")
def inspect(path: Path = typer.Argument(..., help="A checkpoint folder, .safetensors, .pth or .pt file.")) -> None:
    """Architecture, scale, parameters, precision support and checksum of a checkpoint file."""
    from rich.table import Table

    from jdsr_cli.checkpoints.format import inspect_checkpoint
    from jdsr_cli.errors import JdsrError

    try:
        facts = inspect_checkpoint(path)
    except JdsrError as error:
        raise _fail(error) from None
    table = Table(title=str(path), show_header=False)
    table.add_column("field")
    table.add_column("value")
    for key, value in facts.items():
        table.add_row(str(key), json.dumps(value) if isinstance(value, (dict, list)) else str(value))
    make_console().print(table)
