"""What a command reports: an image batch's JSON (a header, the counts and one record per file with the same
keys), and an evaluation's tables and JSON (the model, then each set under its convention)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jdsr_cli import __version__
from jdsr_cli.commands.batch import BatchOutcome, FileReport
from jdsr_cli.io.atomic import atomic_write_text

if TYPE_CHECKING:
    from jdsr_cli.commands.evaluate_job import EvalJob
    from jdsr_cli.commands.evaluation import SetResult


def summary_counts(outcome: BatchOutcome) -> dict[str, int]:
    return {"done": outcome.count("done"), "skipped": outcome.count("skipped"), "failed": outcome.count("failed"),
            "total": outcome.total}


def summary_line(outcome: BatchOutcome, *, fail_fast: bool = False) -> str:
    """``3 done, 0 skipped, 1 failed`` plus what was not run and why."""
    counts = summary_counts(outcome)
    line = f"{counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed"
    warned = sum(bool(r.warnings) for r in outcome.reports if r.status == "done")
    if warned:
        line += f" ({warned} with warnings)"
    if outcome.not_run:
        why = str(outcome.interrupted) if outcome.interrupted is not None else "--fail-fast" if fail_fast else "stopped"
        line += f", {outcome.not_run} not run ({why})"
    return line


def batch_report(
    command: str, header: dict[str, Any], outcome: BatchOutcome, record_defaults: dict[str, Any]
) -> dict[str, Any]:
    """The whole report as a JSON-ready dict (``interrupted`` names the signal when the batch was stopped)."""
    payload: dict[str, Any] = {"jdsr_version": __version__, "command": command, **header,
                               "summary": summary_counts(outcome)}
    if outcome.interrupted is not None:
        payload["interrupted"] = str(outcome.interrupted)
    payload["files"] = [_record(report, record_defaults) for report in outcome.reports]
    return payload


def _record(report: FileReport, defaults: dict[str, Any]) -> dict[str, Any]:
    record = report.to_json()
    for key, value in defaults.items():
        record.setdefault(key, value)
    return record


def write_report(path: Path, payload: dict[str, Any]) -> None:
    """Write atomically (the folder was checked before the command started)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(payload, indent=2) + "\n")


def eval_report(job: EvalJob, results: list[SetResult]) -> dict[str, Any]:
    """An evaluation's JSON: the model and how its LR was made, then each set's means and images."""
    return {**job.header, "sets": [result.to_json() for result in results]}


@dataclass(frozen=True)
class ScoreTable:
    """One set's scores for people: a title naming the convention, the columns, one row per image, the means."""

    title: str
    columns: list[str]  # the first holds names, the others numbers
    rows: list[list[str]] = field(default_factory=list)
    mean: list[str] = field(default_factory=list)


def eval_table(job: EvalJob, result: SetResult) -> ScoreTable:
    """The table of one scored set: PSNR and SSIM, plus the LR's fidelity with a downscaler and NIQE if asked."""
    with_lr = job.downscaler is not None
    columns = ["image", "PSNR (dB)", "SSIM"]
    columns += ["LR vs bicubic LR (dB)"] * with_lr + ["NIQE (SR, lower is better)"] * job.niqe

    def cells(name: str, psnr: float, ssim: float, lr_psnr: float | None, niqe: float | None) -> list[str]:
        row = [name, f"{psnr:.2f}", f"{ssim:.4f}"]
        if with_lr:
            row.append(f"{lr_psnr:.2f}")
        if job.niqe:
            row.append("n/a" if niqe is None else f"{niqe:.4f}")
        return row

    plus = "+" if job.tta else ""  # the ×8 self-ensemble
    return ScoreTable(
        title=f"{job.name}{plus} on {result.name} ×{result.scale} — {result.convention}", columns=columns,
        rows=[cells(i.name, i.psnr, i.ssim, i.lr_psnr, i.niqe) for i in result.images],
        mean=cells("mean", result.psnr, result.ssim, result.lr_psnr, result.niqe),
    )
