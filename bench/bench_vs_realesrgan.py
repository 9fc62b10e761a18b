"""The default ×4 model through ``jdsr upscale``'s path against RealESRGAN_x4plus on this CPU, in one process.

Issue 29's speed target: the default ×4 at least 18× RealESRGAN_x4plus's output MP/s. Timed in interleaved rounds
(this VM's speed drifts within minutes), best of ``--repeat``, on one ``--size``² input:
- ``jdsr``: the default ×4 (or ``--model``) through ``create_runner`` (``--precision auto``, automatic tile), as
  the command runs it;
- ``Real-ESRGAN fp32``: RRDBNet 23 blocks, the bare fp32 forward (what Real-ESRGAN's own script runs on a CPU;
  Upscayl/chaiNNer add their own overhead on top);
- ``RRDBNet via jdsr``: the same network through our product path at ``--precision auto`` (bf16 where the CPU has
  it): the ratio that credits the teacher with our engine.
RRDBNet runs with random weights (speed does not depend on them) unless ``--teacher`` names the real file.

Run:  python bench/bench_vs_realesrgan.py [--size 192] [--repeat 3] [--model photo-x4] [--teacher x.param]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_speed import bare_forward, interleaved_best_times  # noqa: E402

from jdsr_cli.archs import REGISTRY  # noqa: E402
from jdsr_cli.archs.registry import ArchConfig  # noqa: E402
from jdsr_cli.checkpoints.load import LoadedModel  # noqa: E402
from jdsr_cli.checkpoints.resolve import resolve_model  # noqa: E402
from jdsr_cli.commands.runner import create_runner  # noqa: E402

ESRGAN = ArchConfig("rrdbnet", 4, {"num_feat": 64, "num_block": 23, "num_grow_ch": 32})


def teacher(path: str | None) -> LoadedModel:
    if path:
        return resolve_model(path, scale=4)
    net = REGISTRY.build(ESRGAN).eval()
    return LoadedModel(model=net, config=ESRGAN, meta={}, source="random RRDBNet", name="RealESRGAN_x4plus (random)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="the ×4 model (default: the bundled default ×4)")
    parser.add_argument("--teacher", default=None, help="RealESRGAN_x4plus as --model takes it (default: random)")
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    ours = resolve_model(args.model, scale=4) if args.model else resolve_model(None, scale=4)
    rrdb = teacher(args.teacher)
    image = np.random.default_rng(0).random((args.size, args.size, 3), dtype=np.float32)
    runner = create_runner(ours, direction="up")
    rrdb_runner = create_runner(rrdb, direction="up")
    x = torch.from_numpy(image).permute(2, 0, 1)[None].contiguous(memory_format=torch.channels_last)
    fns = {
        "jdsr": lambda: runner.upscale(image),
        "Real-ESRGAN fp32": bare_forward(rrdb.model.to(memory_format=torch.channels_last), x, None),
        "RRDBNet via jdsr": lambda: rrdb_runner.upscale(image),
    }
    seconds = interleaved_best_times(fns, args.repeat)
    mp = (args.size * 4) ** 2 / 1e6
    rates = {name: mp / s for name, s in seconds.items()}
    report = {
        "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "size": args.size, "model": ours.name, "precision": str(runner.precision.name),
        "teacher_precision": str(rrdb_runner.precision.name), "mp_per_s": rates,
        "ratio_vs_realesrgan_fp32": rates["jdsr"] / rates["Real-ESRGAN fp32"],
        "ratio_vs_rrdbnet_via_jdsr": rates["jdsr"] / rates["RRDBNet via jdsr"],
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
