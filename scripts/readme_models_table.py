"""Print the bundled-models table of docs/models.md from weights/manifest.json and each checkpoint's config.json.

Figures are those the manifest records (measured by scripts/bundle_model.py); recipes come from
config.json's "training" (each `jdsr train` stage, with the stages it was initialised from).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SETS = ("Set5", "Set14", "B100")


def _params(config: dict[str, Any]) -> int:
    from jdsr_cli.archs import REGISTRY
    from jdsr_cli.archs.registry import ArchConfig

    return sum(p.numel() for p in REGISTRY.build(ArchConfig.from_dict(config)).parameters())


#: flags that only say where a run happened (the rented GPU session of scripts/device_session.sh), not its recipe
_MACHINE_FLAGS = ("--device", "--workers", "--out")


def _command(training: dict[str, Any]) -> str:
    command = training.get("command") or ""
    if not command or "--resume" in command:  # checkpoints from before the starting command was kept
        return f"jdsr train --config configs/{Path(training.get('config', {}).get('out', '')).name}.toml"
    words = shlex.split(command)
    if words and words[0] == "python -m jdsr_cli":
        words[0] = "jdsr"
    kept, skip = [], False
    for i, word in enumerate(words):
        if skip:
            skip = False
        elif word in _MACHINE_FLAGS:
            skip = True
        elif not (i == 2 and word.startswith(".devdata")):  # the packed copy of the config's own data folder
            kept.append(word)
    return " ".join(kept)


def _recipe(training: dict[str, Any]) -> tuple[str, str]:
    """(steps and time per machine, command cell) for a checkpoint and the stages it was initialised from."""
    from jdsr_cli.checkpoints.lineage import hardware_groups, training_stages

    stages = training_stages(training)
    time = " then ".join(f"{' + '.join(map(str, g['steps']))} ({g['hours']:.1f} h, {g['hardware']})"
                         for g in hardware_groups(training))
    commands = " then ".join(f"`{_command(stage)}`" for stage in stages)
    return time, commands


def _cell(metrics: dict[str, Any], name: str) -> str:
    row = metrics.get(name)
    return f"{row['psnr']:.2f} / {row['ssim']:.4f}" if row else "–"


def main() -> None:
    manifest = json.loads((ROOT / "weights" / "manifest.json").read_text())
    print("| model | role | params | steps (training time, hardware) | Set5 | Set14 | B100 | command |")
    print("|---|---|---|---|---|---|---|---|")
    for entry in manifest["models"]:
        if entry["source"] != "bundled":
            continue
        config = json.loads((ROOT / "weights" / entry["path"] / "config.json").read_text())
        steps, command = _recipe(config.get("training") or {})
        role = entry.get("role", "upscale")
        if entry.get("pair"):
            role += f", pair `{entry['pair']}` (round trip)"
        elif entry.get("default_for_scale"):
            role += f", default ×{entry['scale']}"
        m = entry.get("metrics", {})
        print(f"| `{entry['name']}` | {role} | {_params(config) / 1e3:.0f}K | {steps} | "
              + " | ".join(_cell(m, s) for s in SETS) + f" | {command} |")


if __name__ == "__main__":
    main()
