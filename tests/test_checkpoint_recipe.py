"""Finding the recipe of legacy and foreign files: unwrapping, prefixes, detection, safe unpickling, and
``jdsr models inspect`` reporting exactly what a load finds (the shared ``checkpoints.recipe`` rule)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch

from jdsr_cli.archs.base import SRNet
from jdsr_cli.archs.registry import ArchConfig, ArchRegistry, ArchSpec, SizeRequirement
from jdsr_cli.checkpoints.digest import sha256_file
from jdsr_cli.checkpoints.inspection import inspect_checkpoint
from jdsr_cli.checkpoints.legacy import extract_state_dict, strip_prefixes
from jdsr_cli.checkpoints.load import load_checkpoint
from jdsr_cli.checkpoints.save import save_checkpoint
from jdsr_cli.errors import ModelLoadError, UnknownArchitectureError
from tests.helpers.tinynet import TINY_REGISTRY, TinyNet, detect_tiny, make_tiny, same_outputs, tiny_config

# ---------------------------------------------------------------------------------------- legacy


def test_pth_with_params_ema_and_module_prefix(tmp_path: Path) -> None:
    ema, plain = make_tiny(seed=1), make_tiny(seed=2)
    prefixed = lambda m: {f"module.{k}": v for k, v in m.state_dict().items()}  # noqa: E731
    path = tmp_path / "net_g.pth"
    torch.save({"params": prefixed(plain), "params_ema": prefixed(ema), "iter": 5}, path)
    loaded = load_checkpoint(path, registry=TINY_REGISTRY)
    assert loaded.config == tiny_config() and loaded.meta["config_source"] == "detected"
    assert same_outputs(ema, loaded.model) and not same_outputs(plain, loaded.model)
    assert loaded.meta["weights_sha256"] == sha256_file(path)


def test_scale_hint_never_overrides_a_certain_detection(tmp_path: Path) -> None:
    path = tmp_path / "x3.pth"
    torch.save(make_tiny(scale=3).state_dict(), path)
    loaded = load_checkpoint(path, registry=TINY_REGISTRY, scale_hint=2)
    assert loaded.model_scale == 3 and loaded.meta["scale_candidates"] == [3]


def test_pt_with_nested_state_dict_and_prefixes(tmp_path: Path) -> None:
    model = make_tiny(scale=3)
    nested = {"state_dict": {f"netG.module.{k}": v for k, v in model.state_dict().items()}, "epoch": 3}
    path = tmp_path / "model.pt"
    torch.save(nested, path)
    loaded = load_checkpoint(path, registry=TINY_REGISTRY)
    assert loaded.config.scale == 3 and same_outputs(model, loaded.model)


def test_extract_and_strip_helpers() -> None:
    t = torch.zeros(1)
    assert list(strip_prefixes({"module.model.a": t, "module.model.b": t})) == ["a", "b"]
    assert list(strip_prefixes({"module.a": t, "b": t})) == ["module.a", "b"]  # only a common prefix
    assert list(extract_state_dict({"generator": {"x": t}, "step": 1})) == ["x"]
    with pytest.raises(ModelLoadError, match="no tensors"):
        extract_state_dict({"a": 1})


class CustomPayload:
    """Not allowed by torch's weights_only unpickler."""

    def __init__(self) -> None:
        self.value = 42


def _refusal(path: Path) -> str:
    with pytest.raises(ModelLoadError) as info:
        load_checkpoint(path, registry=TINY_REGISTRY)
    message = str(info.value)
    assert "\n" not in message and "weights_only" not in message.lower() and "trust" not in message
    return message


def test_pickle_needing_code_execution_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"params": make_tiny().state_dict(), "extra": CustomPayload()}, path)
    assert _refusal(path) == (
        f"{path}: refusing to load: its pickle needs tests.test_checkpoint_recipe.CustomPayload, which is not a tensor "
        "or plain container (nothing was run; use a .safetensors or plain state-dict file)"
    )


class RunsACommand:
    """Pickles as a call to os.system, like a malicious checkpoint (pickling it runs nothing)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        import os

        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("form", ["torch-zip", "raw-pickle"])
def test_malicious_pickle_names_the_blocked_global(tmp_path: Path, form: str) -> None:
    import os
    import pickle

    marker, path = tmp_path / "ran", tmp_path / "model.pth"
    payload = {"params": make_tiny().state_dict(), "x": RunsACommand(marker)}
    if form == "torch-zip":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(RunsACommand(marker), protocol=2))
    message = _refusal(path)
    assert message.startswith(f"{path}: refusing to load: its pickle needs {os.system.__module__}.system, ")
    assert len(message) < len(str(path)) + 160 and not marker.exists()



class RunsEval:
    """Pickles as a call to builtins.eval (pickling it runs nothing)."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        import builtins

        return builtins.eval, ("1 + 1",)


@pytest.mark.parametrize("form", ["torch-zip", "raw-pickle"])
def test_a_builtin_is_named_with_its_module(tmp_path: Path, form: str) -> None:
    """torch's message says `eval` for builtins.eval; the refusal names the module too, read from the opcodes."""
    import pickle

    path = tmp_path / "model.pth"
    if form == "torch-zip":
        torch.save({"params": make_tiny().state_dict(), "x": RunsEval()}, path)
    else:
        path.write_bytes(pickle.dumps(RunsEval(), protocol=2))
    assert _refusal(path).startswith(f"{path}: refusing to load: its pickle needs builtins.eval, ")


def test_a_protocol_4_pickle_gets_one_line_and_no_torch_warning(tmp_path: Path) -> None:
    import pickle
    import warnings

    path = tmp_path / "model.pth"
    path.write_bytes(pickle.dumps(RunsEval(), protocol=4))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        message = _refusal(path)
    assert message.startswith(f"{path}: ") and "\n" not in message, message
    assert not [w for w in caught if "pickle protocol" in str(w.message)], [str(w.message) for w in caught]

def test_garbage_pth(tmp_path: Path) -> None:
    path = tmp_path / "junk.pth"
    for data in (b"this is not a checkpoint", b"\x80\x02\x95"):
        path.write_bytes(data)
        message = _refusal(path)
        assert message.startswith(f"{path}: not a readable PyTorch checkpoint (") and not message.endswith("()")
    torch.save(make_tiny().state_dict(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # a torch zip cut in half
    message = _refusal(path)
    assert message.startswith(f"{path}: not a readable PyTorch checkpoint (") and len(message) < len(str(path)) + 160


def test_unknown_state_dict_lists_tensors(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"encoder.conv.weight": torch.zeros(4, 3, 3, 3), "encoder.conv.bias": torch.zeros(4)}, path)
    with pytest.raises(UnknownArchitectureError) as info:
        load_checkpoint(path, registry=TINY_REGISTRY)
    message = str(info.value)
    assert "encoder.conv.weight (4, 3, 3, 3)" in message and "known architectures: tiny" in message
    assert str(path) in message


# --------------------------------------------------------------------------------------- inspect


def test_inspect_checkpoint(tmp_path: Path) -> None:
    model = make_tiny(scale=2, features=8)
    folder = save_checkpoint(tmp_path / "ckpt", model, tiny_config(), metrics={"set5": 31.0})
    info = inspect_checkpoint(folder, registry=TINY_REGISTRY)
    assert (info["arch"], info["scale"], info["kwargs"]) == ("tiny", 2, {"features": 8, "tied": False})
    assert info["params"] == sum(p.numel() for p in model.parameters())
    assert (info["in_channels"], info["out_channels"]) == (3, 3)
    assert (info["supports_fp16"], info["supports_bf16"]) == (True, False)
    assert info["size_requirement"] == {"minimum": 2, "multiple_of": 1}
    assert info["sha256"] == sha256_file(folder / "model.safetensors") and info["sha256_ok"] is True
    assert info["config_source"] == "config.json" and info["detected_matches_config"] is True
    assert info["detected"] == tiny_config().to_dict()
    assert info["file_size"] == (folder / "model.safetensors").stat().st_size
    assert info["tensor_count"] == 5 and info["dtypes"] == ["float32"]
    assert info["metrics"]["set5"] == 31.0 and info["load_error"] is None
    json.dumps(info)  # printable as JSON

    half = tmp_path / "half.pth"
    torch.save({k: v.half() for k, v in model.state_dict().items()}, half)
    info = inspect_checkpoint(half, registry=TINY_REGISTRY)
    assert info["format"] == "pytorch-pickle" and info["config_source"] == "detected"
    assert info["dtypes"] == ["float16"] and info["sha256_ok"] is None


def _same_recipe(info: dict[str, Any], loaded: Any) -> None:
    """``models inspect`` reports what ``upscale --model`` loads."""
    assert (info["arch"], info["scale"], info["kwargs"]) == (loaded.config.arch, loaded.config.scale,
                                                             dict(loaded.config.kwargs))
    assert info["config_source"] == loaded.meta.get("config_source", "config.json")
    assert info["load_error"] is None and info["params"] == sum(p.numel() for p in loaded.model.parameters())


class WrappedNet(SRNet):
    """A tiny net under an attribute named ``model``: its names carry a prefix that stripping removes."""

    def __init__(self, scale: int = 2, features: int = 8) -> None:
        super().__init__()
        self.scale = scale
        self.model = TinyNet(scale=scale, features=features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def detect_wrapped(state: Mapping[str, torch.Tensor]) -> dict[str, Any] | None:
    if not state or not all(k.startswith("model.") for k in state):
        return None
    found = detect_tiny({k.removeprefix("model."): v for k, v in state.items()})
    return None if found is None or found["tied"] else {"scale": found["scale"], "features": found["features"]}


WRAPPED_REGISTRY = ArchRegistry((ArchSpec(name="wrapped", build=WrappedNet, detect=detect_wrapped, presets={},
                                          scales=(2, 3, 4), size=SizeRequirement(minimum=2, multiple_of=1)),))


def test_inspect_detects_legacy_files_as_load_does(tmp_path: Path) -> None:
    # names that only an architecture whose top module is `model` matches: detected unstripped
    torch.manual_seed(0)
    model = WrappedNet(scale=3).eval()
    path = tmp_path / "wrapped.pth"
    torch.save({"params_ema": model.state_dict(), "iter": 7}, path)
    loaded = load_checkpoint(path, registry=WRAPPED_REGISTRY)
    assert loaded.config == ArchConfig("wrapped", 3, {"features": 8}) and same_outputs(model, loaded.model)
    info = inspect_checkpoint(path, registry=WRAPPED_REGISTRY)
    _same_recipe(info, loaded)
    assert info["detect_error"] is None and info["detected"] == loaded.config.to_dict()

    # a BasicSR-style file (params + params_ema, DataParallel prefixes): the same recipe, the EMA weights
    ema = make_tiny(seed=5)
    prefixed = {f"module.{k}": v for k, v in ema.state_dict().items()}
    torch.save({"params": {k: v + 1 for k, v in prefixed.items()}, "params_ema": prefixed}, path)
    _same_recipe(inspect_checkpoint(path, registry=TINY_REGISTRY), load_checkpoint(path, registry=TINY_REGISTRY))


def test_bare_safetensors_with_a_dataparallel_prefix(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    model = make_tiny(scale=4)
    path = tmp_path / "dp.safetensors"
    save_file({f"module.{k}": v.contiguous() for k, v in model.state_dict().items()}, str(path))
    loaded = load_checkpoint(path, registry=TINY_REGISTRY)
    assert loaded.config == tiny_config(scale=4) and same_outputs(model, loaded.model)
    _same_recipe(inspect_checkpoint(path, registry=TINY_REGISTRY), loaded)


def test_inspect_reports_what_does_not_load(tmp_path: Path) -> None:
    folder = save_checkpoint(tmp_path / "ckpt", make_tiny(), tiny_config())
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    info = inspect_checkpoint(folder, registry=TINY_REGISTRY)  # never raises for a mismatch: reports it
    assert info["sha256_ok"] is False and info["arch"] == "tiny"
    defaults = save_checkpoint(tmp_path / "defaults", make_tiny(), ArchConfig("tiny", 2, {}))  # kwargs left out
    info = inspect_checkpoint(defaults, registry=TINY_REGISTRY)
    assert info["kwargs"] == {} and info["detected"]["kwargs"] == {"features": 8, "tied": False}
    assert info["detected_matches_config"] is True  # the same model: the builder's defaults count
    unknown = tmp_path / "other.pth"
    torch.save({"encoder.conv.weight": torch.zeros(4, 3, 3, 3)}, unknown)
    info = inspect_checkpoint(unknown, registry=TINY_REGISTRY)
    assert info["arch"] is None and "no registered architecture" in info["detect_error"]
    assert str(unknown) in info["detect_error"] and info["tensor_count"] == 1
