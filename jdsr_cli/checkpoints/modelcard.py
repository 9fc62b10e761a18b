"""The model card (README.md) of a published checkpoint: the Hub's YAML metadata, then what the model is, how
to run it, what it scores under which convention, and how it was trained.

The metadata is written by huggingface_hub's own ``ModelCardData`` (so ``model-index`` has the shape the Hub
indexes); every figure carries its convention (e.g. ``PSNR-Y crop=4, MATLAB-bicubic LR``) as its metric name,
because a PSNR without it cannot be compared with any other. Nothing here reads files or imports torch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jdsr_cli.checkpoints.format import CONFIG_NAME, WEIGHTS_NAME
from jdsr_cli.checkpoints.lineage import training_summary

CARD_NAME = "README.md"
DEFAULT_LICENSE = "mit"
#: what a metrics key that is not a benchmark set means (the validation images ``jdsr train`` holds out)
VALIDATION_SET = "val"
#: the training settings the card lists (the whole recipe is config.json's ``training``)
_SETTINGS = ("data", "steps", "batch_size", "patch_size", "lr", "schedule", "ema_decay", "precision", "init")


@dataclass(frozen=True)
class MetricSet:
    """One dataset's figures (``psnr``, ``ssim``, ``images``, ...) and the convention they were measured under."""

    dataset: str
    values: Mapping[str, Any]
    convention: str


@dataclass(frozen=True)
class CardFacts:
    """What the card says; ``meta`` is the published config.json."""

    name: str
    repo_id: str
    meta: Mapping[str, Any]
    sha256: str
    parameters: int
    metrics: Sequence[MetricSet] = ()
    description: str = ""
    role: str = "upscale"
    pair: str | None = None
    extra_tags: Sequence[str] = field(default_factory=tuple)

    @property
    def scale(self) -> int:
        return int(self.meta["scale"])

    @property
    def arch(self) -> str:
        return str(self.meta["arch"])


def metric_sets(*sources: Mapping[str, Any] | None) -> list[MetricSet]:
    """The datasets of ``metrics`` dicts (a manifest entry's, config.json's), each once: the first source wins."""
    sets: dict[str, MetricSet] = {}
    for source in sources:
        convention = str((source or {}).get("convention") or "convention not recorded")
        for dataset, values in (source or {}).items():
            if isinstance(values, Mapping) and dataset not in sets and any(k in values for k in ("psnr", "ssim")):
                sets[dataset] = MetricSet(dataset, dict(values), convention)
    return list(sets.values())


def render_card(facts: CardFacts) -> str:
    """README.md: YAML front matter between ``---`` lines, then the Markdown body."""
    return f"---\n{card_data(facts).to_yaml()}\n---\n\n{_body(facts)}"


def card_data(facts: CardFacts) -> Any:
    """huggingface_hub's ``ModelCardData``: library, tags, license, pipeline, ``model-index`` and the recipe."""
    from huggingface_hub import ModelCardData

    training = dict(facts.meta.get("training") or {})
    summary = training_summary(training) if training else {}
    recipe = {key: summary[key] for key in ("method", "total_steps", "train_hours", "hardware") if key in summary}
    tags = ["super-resolution", "image-to-image", facts.arch, f"x{facts.scale}"]
    if facts.role == "downscale":
        tags.append("learned-downscaler")
    return ModelCardData(
        library_name="jdsr",
        license=str(facts.meta.get("license") or DEFAULT_LICENSE),
        pipeline_tag="image-to-image",
        tags=[*tags, *facts.extra_tags],
        model_name=facts.name,
        eval_results=_eval_results(facts) or None,
        jdsr={"arch": facts.arch, "scale": facts.scale, "kwargs": dict(facts.meta.get("kwargs") or {}),
              "weights_sha256": facts.sha256, **({"training": recipe} if recipe else {})},
    )


def metric_label(convention: str, metric: str) -> str:
    """The convention as ``metric`` is named: ``PSNR-Y crop=4, ...`` -> ``SSIM-Y crop=4, ...`` for ssim."""
    head = metric.upper()
    if convention.startswith("PSNR"):
        return head + convention[len("PSNR"):]
    return f"{head} ({convention})"


def _eval_results(facts: CardFacts) -> list[Any]:
    from huggingface_hub import EvalResult

    task = "Image super-resolution" if facts.role != "downscale" else "Learned downscaling"
    results = []
    for metric_set in facts.metrics:
        validation = metric_set.dataset == VALIDATION_SET
        for metric, digits in (("psnr", 3), ("ssim", 4)):
            value = metric_set.values.get(metric)
            if not isinstance(value, (int, float)):
                continue
            results.append(EvalResult(
                task_type="image-to-image", task_name=f"{task} x{facts.scale}",
                dataset_type=metric_set.dataset,
                dataset_name="held-out training images" if validation else metric_set.dataset,
                dataset_split="validation" if validation else "test",
                metric_type=metric, metric_value=round(float(value), digits),
                metric_name=metric_label(metric_set.convention, metric),
            ))
    return results


# ------------------------------------------------------------------------------------------- body


def _body(facts: CardFacts) -> str:
    sections = [_intro(facts), _usage(facts), _quality(facts), _training(facts), _files(facts)]
    return "\n\n".join(section.strip() for section in sections) + "\n"


def _intro(facts: CardFacts) -> str:
    kwargs = ", ".join(f"{k}={v}" for k, v in sorted((facts.meta.get("kwargs") or {}).items()))
    what = "learned ×{s} downscaler" if facts.role == "downscale" else "×{s} super-resolution model"
    lines = [f"# {facts.name}", "",
             f"A {what.format(s=facts.scale)} ({facts.arch.upper()}, {facts.parameters:,} parameters) for the "
             "`jdsr` command-line tool." + (f" {facts.description}" if facts.description else ""), "",
             "| | |", "|---|---|",
             f"| architecture | `{facts.arch}`{f' ({kwargs})' if kwargs else ''} |",
             f"| scale | ×{facts.scale} |",
             f"| weights | `{WEIGHTS_NAME}`, sha256 `{facts.sha256}` |"]
    if facts.pair:
        lines.append(f"| pair | `{facts.pair}` (the model that undoes this one) |")
    return "\n".join(lines)


def _usage(facts: CardFacts) -> str:
    uri = f"hf://{facts.repo_id}/{WEIGHTS_NAME}"
    if facts.role == "downscale":
        command = f"jdsr downscale photo.png -s {facts.scale} --method superior --model {uri}"
    else:
        command = f"jdsr upscale photo.png --model {uri} -o out/"
    return "\n".join([
        "## Use", "", "```bash", "pip install jdsr-cli", command, "```", "",
        f"Pin a commit for a reproducible download: `hf://{facts.repo_id}@<commit>/{WEIGHTS_NAME}` (the 40-hex id "
        "from this repository's history). jdsr checks the weights against the sha256 in `config.json` before it uses "
        "them, and a pinned commit that is already cached is used without any request (`HF_HUB_OFFLINE=1` works).",
    ])


def _quality(facts: CardFacts) -> str:
    if not facts.metrics:
        return "## Quality\n\nNo measured metrics: `config.json` records none (measure them with `jdsr eval`)."
    lines = ["## Quality", ""]
    for convention in dict.fromkeys(m.convention for m in facts.metrics):
        lines += [f"Convention: {convention}.", "", "| dataset | PSNR (dB) | SSIM | images | other |",
                  "|---|---:|---:|---:|---|"]
        for m in (m for m in facts.metrics if m.convention == convention):
            other = ", ".join(f"{k} {_number(v)}" for k, v in m.values.items()
                              if k not in ("psnr", "ssim", "images") and isinstance(v, (int, float)))
            name = "validation (held out from training)" if m.dataset == VALIDATION_SET else m.dataset
            lines.append(f"| {name} | {_number(m.values.get('psnr'), 2)} | {_number(m.values.get('ssim'), 4)} "
                         f"| {m.values.get('images', '')} | {other} |")
        lines.append("")
    return "\n".join(lines)


def _training(facts: CardFacts) -> str:
    training = dict(facts.meta.get("training") or {})
    if not training:
        return "## Training\n\nNo training recipe recorded in `config.json`."
    summary = training_summary(training)
    where = f" on {summary['hardware']}" if summary.get("hardware") else ""
    lines = ["## Training", "", f"Method `{summary['method']}`: {summary['total_steps']} steps in "
             f"{len(summary['stages'])} stage(s), {summary['train_hours']} h{where}.", ""]
    for index, stage in enumerate(summary["stages"], 1):
        resumed = "".join(f"; resumed with `{without_local_paths(str(c))}`" for c in stage.get("resumed_with") or [])
        command = f": `{without_local_paths(str(stage['command']))}`" if stage.get("command") else ""
        lines.append(f"{index}. {stage['method']}, {stage.get('steps')} steps{command}{resumed}")
    settings = training.get("config") or {}
    shown = ", ".join(f"{key} {without_local_paths(str(settings[key]))}" for key in _SETTINGS
                      if settings.get(key) not in (None, "", {}))
    if shown:
        lines += ["", f"Last stage's settings: {shown}."]
    lines += ["", f"The whole recipe (every stage's settings) is `training` in `{CONFIG_NAME}`."]
    return "\n".join(lines)


def _files(facts: CardFacts) -> str:
    return "\n".join([
        "## Files", "",
        f"- `{WEIGHTS_NAME}`: the weights (its safetensors header also records the architecture).",
        f"- `{CONFIG_NAME}`: the jdsr recipe: architecture, scale, training, metrics and `weights_sha256`.",
        "", f"License: {facts.meta.get('license') or DEFAULT_LICENSE}.",
    ])


#: an absolute local path, alone or after ``--option=``: POSIX (``/home/...``, ``~/...``) or Windows (``C:\\...``)
_ABSOLUTE = re.compile(r"^(?P<lead>['\"]?(?:--?[\w-]+=)?)(?P<path>(?:~|/|[A-Za-z]:[\\/])\S*?)(?P<tail>['\"]?)$")


def is_local_path(text: str) -> bool:
    """Whether ``text`` holds an absolute local path (a word of it starts with ``/``, ``~`` or ``C:\\``)."""
    return without_local_paths(text) != text


def without_local_paths(text: str) -> str:
    """``text`` with every absolute local path cut to its last component (``/home/alice/data/DIV2K`` ->
    ``.../DIV2K``): a public card should not give away user names and folder layouts."""

    def short(word: str) -> str:
        found = _ABSOLUTE.match(word)
        if found is None:
            return word
        last = re.split(r"[\\/]", found["path"].rstrip("\\/"))[-1]
        if not last or last == "~" or last.endswith(":"):
            return word
        return f"{found['lead']}.../{last}{found['tail']}"

    return re.sub(r"\S+", lambda m: short(m[0]), text)


def _number(value: Any, digits: int = 3) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "-" if value is None else str(value)
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)
