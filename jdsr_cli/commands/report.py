"""The JSON report of an image batch: a header, the counts and one record per file with the same keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jdsr_cli.commands.batch import BatchOutcome, FileReport


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
    from jdsr_cli import __version__

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
    """Write atomically (the folder was checked before the batch started)."""
    from jdsr_cli.io.atomic import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(payload, indent=2) + "\n")
