"""The fair test of JDSR (issue 30 §2): IMDN ×4 from scratch, plain L1 against full JDSR, two seeds each.

    python experiments/jdsr_fair.py                      # train/resume the four runs, score, table + decision
    python experiments/jdsr_fair.py --steps 4 --out /tmp/fair --sets Set5   # rehearsal (minutes)

The runs are configs/jdsr-fair-plain.toml and configs/jdsr-fair-jdsr.toml (equal everything outside the
``[jdsr]`` table: data list, patches, schedule, seeds), each its own ``jdsr train`` process under
``<out>/<row>-s<seed>``; an interrupted run resumes from its ``last/`` on the next call, so the test can be
spread over sessions (keep the precision: the configs say bf16, which needs a CPU with native bf16 or a GPU).
Each run's ``last/`` (equal steps, no best-of) is scored with ``jdsr eval`` in fp32: PSNR-Y / SSIM-Y,
crop = 4, uint8 SR, MATLAB-bicubic LR. Results: ``<out>/results.json``; the table and the decision on stdout.

The decision rule, fixed in the configs before any run: JDSR helps only if both JDSR seeds beat both plain
seeds on Set14 and on B100 by at least twice the seed spread (max − min over the seeds of a row, the larger
of the two rows').
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
ROWS = {"plain": ROOT / "configs" / "jdsr-fair-plain.toml", "jdsr": ROOT / "configs" / "jdsr-fair-jdsr.toml"}
DECIDING_SETS = ("Set14", "B100")


def jdsr(*args: str) -> None:
    """One ``jdsr`` command in its own process (its memory and threads are its own); fails loudly."""
    cmd = [sys.executable, "-m", "jdsr_cli", *args]
    if subprocess.run(cmd, env={**os.environ, "NO_COLOR": "1"}).returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}")


def finished(out: Path, steps: int) -> bool:
    import torch

    state = out / "last" / "training_state.pt"
    return state.is_file() and torch.load(state, map_location="cpu", weights_only=True)["step"] >= steps


def train(row: str, seed: int, out: Path, args: argparse.Namespace) -> None:
    if finished(out, args.steps):
        return
    if (out / "last" / "training_state.pt").is_file():
        jdsr("train", "--resume", str(out))
        return
    jdsr("train", str(args.data / "train"), "--config", str(ROWS[row]), "--seed", str(seed), "--out", str(out),
         *(["--steps", str(args.steps)] if args.steps != 3000 else []))


def score(checkpoint: Path, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "scores.json"
        jdsr("eval", str(checkpoint), "--data", str(args.data), "--sets", ",".join(args.sets), "--json", str(report))
        sets = json.loads(report.read_text())["sets"]
    return {entry["set"]: {"psnr": entry["psnr"], "ssim": entry["ssim"]} for entry in sets}


def spread(rows: list[dict[str, Any]], name: str, set_name: str) -> float:
    values = [r["scores"][set_name]["psnr"] for r in rows if r["row"] == name]
    return max(values) - min(values)


def decide(rows: list[dict[str, Any]], sets: list[str]) -> str:
    """The rule stated in the configs, applied to whichever of Set14/B100 were scored."""
    deciding = [s for s in DECIDING_SETS if s in sets]
    if {r["row"] for r in rows} != set(ROWS) or not deciding:
        return "no decision: the table is incomplete"
    bar = 2 * max(spread(rows, name, s) for name in ROWS for s in deciding)
    margins = {s: min(r["scores"][s]["psnr"] for r in rows if r["row"] == "jdsr")
               - max(r["scores"][s]["psnr"] for r in rows if r["row"] == "plain") for s in deciding}
    helps = all(m >= bar and m > 0 for m in margins.values())
    detail = ", ".join(f"{s}: worst JDSR − best plain = {m:+.3f} dB" for s, m in margins.items())
    return f"JDSR {'helps' if helps else 'does not help'} ({detail}; the bar, twice the seed spread, {bar:.3f} dB)"


def table(rows: list[dict[str, Any]], sets: list[str]) -> str:
    lines = ["| row | seed | " + " | ".join(f"{s} PSNR / SSIM" for s in sets) + " |", "|" + "---|" * (len(sets) + 2)]
    for r in rows:
        cells = [f"{r['scores'][s]['psnr']:.3f} / {r['scores'][s]['ssim']:.4f}" for s in sets]
        lines.append(f"| {r['row']} | {r['seed']} | " + " | ".join(cells) + " |")
    for name in ROWS:
        if sum(r["row"] == name for r in rows) > 1:
            lines.append(f"| {name}: spread | – | " + " | ".join(f"{spread(rows, name, s):.3f}" for s in sets) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "jdsr-fair")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--steps", type=int, default=3000, help="the configs' 3000; fewer only to rehearse")
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--sets", default="Set5,Set14,B100")
    args = parser.parse_args()
    args.sets = args.sets.split(",")
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in ROWS:
        for seed in (int(s) for s in args.seeds.split(",")):
            out = args.out / f"{name}-s{seed}"
            train(name, seed, out, args)
            rows.append({"row": name, "seed": seed, "steps": args.steps, "scores": score(out / "last", args)})
            (args.out / "results.json").write_text(json.dumps(rows, indent=1))
    print(table(rows, args.sets))
    print(decide(rows, args.sets))


if __name__ == "__main__":
    main()
