"""Print the README's bundled-models table from weights/manifest.json (figures as measured at training)."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    manifest = json.loads((ROOT / "weights" / "manifest.json").read_text())
    print("| model | params | steps (CPU time) | Set5 PSNR / SSIM | Set14 PSNR / SSIM | bicubic Set5 / Set14 | command |")
    print("|---|---|---|---|---|---|---|")
    for entry in manifest["models"]:
        if entry["source"] != "bundled":
            continue
        config = json.loads((ROOT / "weights" / entry["path"] / "config.json").read_text())
        recipe, m = config["training"], entry["metrics"]
        from jdsr_cli.archs import REGISTRY
        from jdsr_cli.archs.registry import ArchConfig

        params = sum(p.numel() for p in REGISTRY.build(ArchConfig.from_dict(config)).parameters())
        print(
            f"| `{entry['name']}` (default ×{entry['scale']}) | {params / 1e3:.0f}K | {recipe['steps']} "
            f"({recipe['wall_clock_s'] / 60:.0f} min) | {m['Set5']['psnr']:.3f} / {m['Set5']['ssim']:.4f} | "
            f"{m['Set14']['psnr']:.3f} / {m['Set14']['ssim']:.4f} | {m['Set5']['bicubic_psnr']:.3f} / "
            f"{m['Set14']['bicubic_psnr']:.3f} | `{recipe['command']}` |"
        )


if __name__ == "__main__":
    main()
