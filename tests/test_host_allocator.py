"""The host allocator settings: what they change, that the opt-out holds, and that a forward pass stops
faulting in fresh pages (the minor-fault count is the oracle; each process starts clean)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc settings: Linux only")

_FORWARD_FAULTS = """
import resource, sys
if sys.argv[1] == "tuned":
    from jdsr_cli.process.host_allocator import tune_host_allocator
    print(tune_host_allocator(), file=sys.stderr)
import torch
from jdsr_cli.archs.imdn import IMDN
torch.manual_seed(0)
net, x = IMDN(4, num_modules=2).eval(), torch.rand(1, 3, 160, 160)
with torch.inference_mode():
    for _ in range(2):
        net(x)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    net(x)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _run(code: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("JDSR_SYSTEM_ALLOCATOR", "THP_MEM_ALLOC_ENABLE")}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=environment, check=True, timeout=300
    )


def _faults(mode: str, **env: str) -> int:
    return int(_run(_FORWARD_FAULTS, mode, **env).stdout.strip())


def test_tuning_reports_and_sets_huge_pages() -> None:
    code = (
        "import os; from jdsr_cli.process.host_allocator import tune_host_allocator as t; r = t(); "
        "print(r.glibc_keeps_freed_memory, r.torch_huge_pages, os.environ.get('THP_MEM_ALLOC_ENABLE'), t() == r)"
    )
    glibc, huge, variable, idempotent = _run(code).stdout.split()
    assert (huge, variable, idempotent) == ("True", "1", "True")
    assert glibc == "True"  # this project's machines run glibc
    assert _run(code, THP_MEM_ALLOC_ENABLE="0").stdout.split()[1:3] == ["False", "0"]  # the user's choice stands


def test_opt_out_changes_nothing() -> None:
    code = (
        "import os; from jdsr_cli.process.host_allocator import tune_host_allocator as t; r = t(); "
        "print(r.glibc_keeps_freed_memory, r.torch_huge_pages, os.environ.get('THP_MEM_ALLOC_ENABLE'), r.reason)"
    )
    out = _run(code, JDSR_SYSTEM_ALLOCATOR="1").stdout.split(maxsplit=3)
    assert out[:3] == ["False", "False", "None"] and "JDSR_SYSTEM_ALLOCATOR" in out[3]


def test_a_tuned_forward_reuses_its_memory() -> None:
    untuned = _faults("untuned")
    assert untuned > 5000  # 64-channel maps at 160x160 are 6.6 MB each: the default allocator maps them afresh
    assert _faults("tuned") < untuned / 10
    assert _faults("tuned", THP_MEM_ALLOC_ENABLE="0") < untuned / 10  # glibc's part alone, where THP is off


def test_the_cli_applies_it() -> None:
    code = (
        "import os; from jdsr_cli.cli.main import app; app(['doctor'], standalone_mode=False); "
        "print(os.environ.get('THP_MEM_ALLOC_ENABLE'))"
    )
    assert _run(code).stdout.strip().endswith("1")
