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


def hardware_groups(training: dict[str, Any]) -> list[dict[str, Any]]:
    """Consecutive stages run on the same hardware, each with its steps per stage and hours: a recipe that moved
    from a CPU to a GPU must not add the two machines' hours under one name."""
    groups: list[dict[str, Any]] = []
    for stage in training_stages(training):
        hardware = str(stage.get("hardware", "unknown hardware"))
        if not groups or groups[-1]["hardware"] != hardware:
            groups.append({"hardware": hardware, "steps": [], "hours": 0.0})
        groups[-1]["steps"].append(int(stage.get("step", 0)))
        groups[-1]["hours"] += float(stage.get("train_seconds", 0)) / 3600
    return groups


def training_summary(training: dict[str, Any]) -> dict[str, Any]:
    """How a checkpoint was trained, for ``jdsr models info``: the method (and its options), every stage's
    method, steps and command, and the totals."""
    stages = training_stages(training)
    steps, seconds = total_steps_and_seconds(training)
    config = training.get("config") or {}
    summary: dict[str, Any] = {"method": method_of(training)}
    if config.get("method_options"):
        summary["method_options"] = config["method_options"]
    summary["stages"] = [{"method": method_of(stage), "steps": stage.get("step"),
                          "command": stage.get("command"), **({"resumed_with": stage["resumed_with"]}
                                                               if stage.get("resumed_with") else {})}
                         for stage in stages]
    summary["total_steps"] = steps
    summary["train_hours"] = round(seconds / 3600, 2)
    if training.get("hardware"):
        summary["hardware"] = training["hardware"]
    return summary


#: a stage that only re-measures a model (scripts/freeze_cca.py): the model's method is its source's
CONVERSIONS = ("freeze-cca",)


def method_of(training: dict[str, Any]) -> str:
    """The training method a recipe names ('supervised' for recipes written before methods were named); for a
    converted model (static channel statistics), the method of the model it was converted from."""
    method = training.get("method") or (training.get("config") or {}).get("method")
    if method in CONVERSIONS and training.get("init_from"):
        return method_of(training["init_from"][0].get("training") or {})
    return str(method or "supervised")
