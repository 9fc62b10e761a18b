"""The `jdsr distill` comparison (issue 15): one student, every method, equal steps, data, seed and schedule.

    python experiments/distill_compare.py                        # ×4: imdn-x4 → IMDN small, table on stdout
    python experiments/distill_compare.py --steps 4 --batch-size 2 --patch-size 16 --sets Set5 --out /tmp/dc  # rehearsal

The student (``--student-arch``/``--student-preset``, default IMDN ``small``: a third of imdn-x4's
multiply-adds) trains from scratch on ../shared/data/train with the same options in every row; only the
method differs. "student alone" is plain supervised training; ``JDSR`` is JDSR without a teacher and ``JDSR + X``
JDSR with the teacher by method X (``--variants "JDSR + FAKD"``); PISR's
teacher is the bundled superior-LR pair (its decoder is not the student's architecture, so no decoder init).
Runs, resumption, evaluation (last/, PSNR-Y/SSIM-Y crop = scale) and the table are those of
``experiments/jdsr_ablation.py``; rows already in ``<out>/results.json`` are kept.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from jdsr_ablation import DATA, ROOT, print_timing, run_variants, time_variants  # noqa: E402

# name → (method, its table's options); "distill" rows take the teacher from --teacher
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "student alone": ("supervised", {}),
    "output KD": ("distill", {"kd_loss": "output"}),
    "FitNet": ("distill", {"kd_loss": "fitnet"}),
    "FAKD": ("distill", {"kd_loss": "fakd"}),
    "LSFD": ("distill", {"kd_loss": "lsfd"}),
    "SRKD": ("distill", {"kd_loss": "srkd"}),
    "FEED": ("distill", {"kd_loss": "feed"}),
    "PISR": ("distill", {"kd_loss": "pisr", "teachers": ["slr-up-x{scale}"]}),
    "DML": ("distill", {"kd_loss": "dml"}),
    "AFD": ("distill", {"kd_loss": "afd"}),
    "JDSR": ("jdsr", {"meta_every": 4}),
}
# JDSR plus each offline method (issue 15: do the gains add up?); run the one that matters by name
VARIANTS.update({f"JDSR + {name}": ("jdsr", {"meta_every": 4, "teachers": ["{teacher}"], "kd_loss": opts["kd_loss"]})
                 for name, (method, opts) in list(VARIANTS.items())
                 if method == "distill" and opts["kd_loss"] in ("output", "fitnet", "fakd", "lsfd", "srkd", "feed")})
SEEDED = ("student alone", "output KD", "SRKD")  # the baseline and the best method get a seed spread


def run_config(args: argparse.Namespace, method: str, options: dict[str, Any], seed: int, out: Path) -> str:
    lines = [f'data = "{args.data / "train"}"', f"scale = {args.scale}", f'arch = "{args.student_arch}"',
             f'preset = "{args.student_preset}"', f'method = "{method}"', f'out = "{out}"', f"steps = {args.steps}",
             f"batch_size = {args.batch_size}", f"patch_size = {args.patch_size}", f"lr = {args.lr}",
             'schedule = "cosine"', f'precision = "{args.precision}"', f"val_every = {args.val_every}",
             f"save_every = {args.save_every}", f"log_every = {args.log_every}", "workers = 0", f"seed = {seed}"]
    if method == "distill":
        options = {"teachers": ["{teacher}"], **options}
    if "teachers" in options:
        options = {**options, "teachers": [t.format(scale=args.scale, teacher=args.teacher) for t in options["teachers"]]}
    if options:
        lines += ["", f"[{method}]", *(f"{k} = {json.dumps(v)}" for k, v in options.items())]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "distill-compare")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--teacher", default="imdn-x{scale}")
    parser.add_argument("--student-arch", default="imdn")
    parser.add_argument("--student-preset", default="small")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--patch-size", type=int, default=48)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--sets", default="Set5,Set14,B100")
    parser.add_argument("--variants", default=",".join(v for v in VARIANTS if not v.startswith("JDSR +")),
                        help="comma-separated; every row but the JDSR + method ones by default, those by name")
    parser.add_argument("--timing", action="store_true", help="only time each variant's step (in one process)")
    args = parser.parse_args()
    args.teacher = args.teacher.format(scale=args.scale)
    args.val_every = args.save_every = max(1, min(500, args.steps))
    args.log_every = max(1, min(50, args.steps))
    args.out.mkdir(parents=True, exist_ok=True)
    if args.timing:
        print_timing(args, time_variants(args, args.variants.split(","), table=VARIANTS, make_config=run_config))
        return
    run_variants(args, VARIANTS, SEEDED, run_config)


if __name__ == "__main__":
    main()
