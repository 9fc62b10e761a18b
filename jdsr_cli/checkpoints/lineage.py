"""A checkpoint's training stages: a model fine-tuned with ``--init`` carries its source's recipe
(``training.init_from``), so the whole recipe (steps, hours, commands) can be told from one config.json."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jdsr_cli.checkpoints.load import LoadedModel


def init_record(loaded: LoadedModel) -> dict[str, Any]:
    """One ``training.init_from`` entry: who the ``--init`` checkpoint is and how it was trained."""
    return {"name": loaded.name, "weights_sha256": loaded.meta.get("weights_sha256"),
            "training": loaded.meta.get("training") or {}}


def training_stages(training: dict[str, Any]) -> list[dict[str, Any]]:
    """The runs that made a checkpoint, first to last: its ``--init`` ancestors, then itself."""
    sources = training.get("init_from") or []
    return [*(training_stages(sources[0].get("training") or {}) if sources else []), training]


def total_steps_and_seconds(training: dict[str, Any]) -> tuple[int, float]:
    stages = training_stages(training)
    return sum(int(s.get("step", 0)) for s in stages), sum(float(s.get("train_seconds", 0)) for s in stages)
