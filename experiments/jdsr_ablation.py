"""The JDSR ablation (issue 14 §3): equal steps, data, seed and schedule; one row per variant and seed.

    python experiments/jdsr_ablation.py                       # the table in docs/jdsr-results.md (≈70 min, 2 cores)
    python experiments/jdsr_ablation.py --steps 4 --batch-size 2 --patch-size 16 --sets Set5 --out /tmp/abl  # rehearsal
    python experiments/jdsr_ablation.py --timing              # s/step of each variant in one process, ratio to plain

Every variant fine-tunes the bundled ``imdn-x4`` (``--init``) on ../shared/data/train (T91 + BSD200) with the
same options; only the method and its ``[jdsr]`` switches differ. Each run is its own ``jdsr train``
process (so its peak RSS is its own), resumes if interrupted (run the command again), and its ``last/``
checkpoint (equal steps, not a best-of) is scored with the ``jdsr eval`` protocol: PSNR-Y / SSIM-Y, crop =
scale, uint8 SR, MATLAB-bicubic LR. Results: ``<out>/results.json`` and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from jdsr_cli.training.run_folder import RunFolder

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"

# name → (method, [jdsr] options); "plain" is the control: ordinary supervised training
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "plain L1": ("supervised", {}),
    "+ self-distillation": ("jdsr", {"meta": False, "mutual": False}),
    "+ SD + meta generator": ("jdsr", {"mutual": False}),
    "mutual learning only": ("jdsr", {"self_distill": False}),
    "full JDSR": ("jdsr", {}),
    # variants of the reconstruction tried after the defaults (docs/jdsr-results.md says why)
    "+ SD, section weights 0.1": ("jdsr", {"meta": False, "mutual": False, "isr_weight": 0.1, "label_weight": 0.1}),
    "mutual only, strong peer": ("jdsr", {"self_distill": False, "peer_init": "slr-up-x4",
                                          "peer_preset": "slr-decoder"}),
}
SEEDED = ("plain L1", "full JDSR")  # run with every seed; the others with the first


def run_config(args: argparse.Namespace, method: str, options: dict[str, Any], seed: int, out: Path) -> str:
    lines = [f'data = "{args.data / "train"}"', f"scale = {args.scale}", f'arch = "{args.arch}"',
             f'method = "{method}"', f'init = "{args.init}"', f'out = "{out}"', f"steps = {args.steps}",
             f"batch_size = {args.batch_size}", f"patch_size = {args.patch_size}", f"lr = {args.lr}",
             'schedule = "cosine"', 'precision = "fp32"', f"val_every = {args.val_every}",
             f"save_every = {args.save_every}", f"log_every = {args.log_every}", "workers = 0", f"seed = {seed}"]
    if method == "jdsr":
        table = {**args.jdsr, **options}
        lines += ["", "[jdsr]", *(f"{k} = {json.dumps(v)}" for k, v in table.items())]
    return "\n".join(lines) + "\n"


def train(config: Path, out: Path, steps: int) -> int:
    """Run (or resume) one training in its own process; returns its peak RSS in KiB (0 if already done)."""
    state = RunFolder(out).state_file
    if state.is_file() and torch.load(state, map_location="cpu", weights_only=True)["step"] >= steps:
        return 0
    cmd = [sys.executable, "-m", "jdsr_cli", "train", *(["--resume", str(out)] if state.is_file() else
                                                         ["--config", str(config)])]
    process = subprocess.Popen(cmd, env={**os.environ, "NO_COLOR": "1"})
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed")
    return int(usage.ru_maxrss)


def evaluate(checkpoint: Path, sets: list[str], data: Path) -> dict[str, dict[str, float]]:
    from jdsr_cli.checkpoints.resolve import resolve_model
    from jdsr_cli.commands.evaluation import evaluate_set, find_set
    from jdsr_cli.engine.device import Precision
    from jdsr_cli.engine.upscaler import Upscaler

    loaded = resolve_model(str(checkpoint), scale=None)
    upscaler = Upscaler(loaded.model, scale=loaded.config.scale, device=torch.device("cpu"),
                        precision=Precision("fp32", torch.float32), tile=0)
    scores = {}
    for name in sets:
        result = evaluate_set(upscaler, find_set(data, name))
        scores[name] = {"psnr": round(result.psnr, 4), "ssim": round(result.ssim, 5)}
    return scores


def seconds_per_step(out: Path) -> float:
    state = torch.load(RunFolder(out).state_file, map_location="cpu", weights_only=True)
    return float(state["train_seconds"]) / int(state["step"])


RunConfig = Callable[[argparse.Namespace, str, dict[str, Any], int, Path], str]


def time_variants(args: argparse.Namespace, variants: list[str], steps: int = 8,
                  table: dict[str, tuple[str, dict[str, Any]]] | None = None,
                  make_config: RunConfig | None = None) -> dict[str, float]:
    """Seconds per training step of each variant, in this process, one after another (warm-up excluded):
    the s/step column, as ratios to plain L1 measured alongside (the runs' own wall-clock shares the CPU with
    whatever else ran)."""
    import tempfile
    import time

    from jdsr_cli.training.config import load_config
    from jdsr_cli.training.trainer import Trainer

    seconds = {}
    with tempfile.TemporaryDirectory() as tmp:
        for variant in variants:
            method, options = (table or VARIANTS)[variant]
            out = Path(tmp) / variant.replace(" ", "_")
            path = Path(tmp) / "run.toml"
            text = (make_config or run_config)(args, method, options, 1, out)
            path.write_text(text.replace(f"steps = {args.steps}", "steps = 100000"))
            trainer = Trainer(load_config(path, {}), log=lambda _line: None)
            trainer.prepare()
            trainer.run(stop_at=2)  # warm-up: oneDNN primitives, the first meta step
            start = time.perf_counter()
            trainer.run(stop_at=2 + steps)
            seconds[variant] = (time.perf_counter() - start) / steps
    return seconds


def table(rows: list[dict[str, Any]], sets: list[str], seeded: tuple[str, ...] = SEEDED) -> str:
    head = "| variant | seed | " + " | ".join(f"{s} PSNR / SSIM" for s in sets) + " | s/step | peak RSS |"
    lines = [head, "|" + "---|" * (len(sets) + 4)]
    for row in rows:
        cells = [f"{row['scores'][s]['psnr']:.3f} / {row['scores'][s]['ssim']:.4f}" for s in sets]
        rss = f"{row['peak_rss_kib'] / 1024**2:.2f} GiB" if row["peak_rss_kib"] else "n/a"
        lines.append(f"| {row['variant']} | {row['seed']} | " + " | ".join(cells)
                     + f" | {row['s_per_step']:.2f} | {rss} |")
    for variant in seeded:  # the seed spread: a gain smaller than it is not a gain
        runs = [r for r in rows if r["variant"] == variant]
        if len(runs) > 1:
            spread = [max(r["scores"][s]["psnr"] for r in runs) - min(r["scores"][s]["psnr"] for r in runs)
                      for s in sets]
            means = [statistics.mean(r["scores"][s]["psnr"] for r in runs) for s in sets]
            lines.append(f"| {variant}: mean (spread) | {len(runs)} seeds | "
                         + " | ".join(f"{m:.3f} ({d:.3f})" for m, d in zip(means, spread, strict=True)) + " | | |")
    return "\n".join(lines)


def print_timing(args: argparse.Namespace, seconds: dict[str, float]) -> None:
    """The s/step column as a table with ratios to the first variant; also ``<out>/timing.json``."""
    for variant, value in seconds.items():
        print(f"| {variant} | {value:.2f} s/step | {value / seconds[next(iter(seconds))]:.2f}× |")
    (args.out / "timing.json").write_text(json.dumps(seconds, indent=1))


def run_variants(args: argparse.Namespace, variants: dict[str, tuple[str, dict[str, Any]]],
                 seeded: tuple[str, ...], run_config: RunConfig) -> None:
    """Train (or resume) and score every ``--variants`` row not yet in ``<out>/results.json``, every seed for
    the ``seeded`` ones and the first for the others; print the table after each row."""
    seeds = [int(s) for s in args.seeds.split(",")]
    sets = args.sets.split(",")
    results = args.out / "results.json"
    rows: list[dict[str, Any]] = json.loads(results.read_text()) if results.is_file() else []
    for variant in args.variants.split(","):
        method, options = variants[variant]
        for seed in seeds if variant in seeded else seeds[:1]:
            if any(r["variant"] == variant and r["seed"] == seed for r in rows):
                continue
            out = args.out / f"{variant.replace(' ', '_').replace('+', 'p')}-s{seed}"
            config = args.out / f"{out.name}.toml"
            config.write_text(run_config(args, method, options, seed, out))
            rss = train(config, out, args.steps)
            rows.append({"variant": variant, "seed": seed, "method": method, "options": options,
                         "steps": args.steps, "s_per_step": seconds_per_step(out), "peak_rss_kib": rss,
                         "scores": evaluate(RunFolder(out).last, sets, args.data)})
            results.write_text(json.dumps(rows, indent=1))
            print(table(rows, sets, seeded), flush=True)
    print(table(rows, sets, seeded))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "jdsr-ablation")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--arch", default="imdn")
    parser.add_argument("--init", default="imdn-x4")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--patch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--sets", default="Set5,Set14,B100")
    parser.add_argument("--variants", default=",".join(list(VARIANTS)[:5]), help="comma-separated; the first five "
                        "by default, the later ones by name")
    parser.add_argument("--jdsr", type=json.loads, default={"meta_every": 4, "peer_lr": 2e-4},
                        help="[jdsr] options shared by every jdsr variant (JSON)")
    parser.add_argument("--timing", action="store_true", help="only time each variant's step (in one process)")
    args = parser.parse_args()
    args.val_every = args.save_every = max(1, min(200, args.steps))
    args.log_every = max(1, min(50, args.steps))
    args.out.mkdir(parents=True, exist_ok=True)
    if args.timing:
        print_timing(args, time_variants(args, args.variants.split(",")))
        return
    run_variants(args, VARIANTS, SEEDED, run_config)


if __name__ == "__main__":
    main()
