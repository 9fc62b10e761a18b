"""Options that pick or shape the model, shared by ``jdsr upscale`` and ``jdsr eval`` (declared once)."""

from __future__ import annotations

from typing import Annotated

import typer

Denoise = Annotated[float, typer.Option(
    "--denoise", help="0..1: 1 the model as it is; lower moves its weights towards its clean counterpart (photo "
    "models), keeping more texture.")]
DenoiseFrom = Annotated[str | None, typer.Option(
    "--denoise-from", help="The clean model --denoise interpolates with (default: the photo model's own, from the "
    "manifest).")]
