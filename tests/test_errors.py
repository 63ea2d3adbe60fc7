"""Bad input: each malformed file gets its own typed error with the value and the fix, and exit code 2 from the CLI.
Pickles that would run code are refused, and the test proves the code did not run."""

import inspect
import json
import random
import struct

import pytest
import torch
from safetensors.torch import save_file

from conftest import random_module
from motion_core import (CheckpointNotFoundError, ConfigError, CorruptCheckpointError, MotionCoreError,
                         NotAMotionModuleError, UnknownLayoutError, UnsafeCheckpointError, load_motion_module)
from motion_core.cli import main


class Payload:
    """Unpickling this runs `open(marker, "w")`: a visible side effect if any code runs."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_code_running_pickle_is_refused_and_did_not_run(tmp_path):
    marker = tmp_path / "pwned"
    for i, legacy in enumerate((False, True)):
        path = tmp_path / f"evil{i}.ckpt"
        torch.save({"state_dict": {"a": torch.zeros(1)}, "payload": Payload(marker)}, path,
                   _use_new_zipfile_serialization=not legacy)
        with pytest.raises(UnsafeCheckpointError, match=r"\(it wants io\.open\); it was refused and nothing ran"):
            load_motion_module(path)
        assert not marker.exists()
    # the payload is live: an unsafe load does run it, so the assertion above could have failed
    torch.load(tmp_path / "evil0.ckpt", weights_only=False)
    assert marker.exists()


def _v3_sd():
    return random_module("v3").state_dict()


def _write_sd(sd, name="mm.safetensors"):
    def build(tmp_path):
        save_file(sd() if callable(sd) else sd, tmp_path / name)
        return tmp_path / name
    return build


def _bytes(data: bytes, name: str):
    def build(tmp_path):
        (tmp_path / name).write_bytes(data)
        return tmp_path / name
    return build


def _truncated_safetensors(tmp_path):
    save_file(_v3_sd(), tmp_path / "full.safetensors")
    data = (tmp_path / "full.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    return tmp_path / "cut.safetensors"


def _truncated_zip(tmp_path):
    torch.save(_v3_sd(), tmp_path / "full.ckpt")
    data = (tmp_path / "full.ckpt").read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(data[: len(data) // 3])
    return tmp_path / "cut.ckpt"


def _pickled(obj, name="x.ckpt"):
    def build(tmp_path):
        torch.save(obj() if callable(obj) else obj, tmp_path / name)
        return tmp_path / name
    return build


def _folder(files: dict):
    def build(tmp_path):
        d = tmp_path / "adapter"
        d.mkdir()
        for name, content in files.items():
            if isinstance(content, bytes):
                (d / name).write_bytes(content)
            else:
                (d / name).write_text(content)
        return d
    return build


def _drop(pattern):
    return lambda: {k: v for k, v in _v3_sd().items() if pattern not in k}


def _reshape_one():
    sd = _v3_sd()
    key = next(k for k in sd if k.endswith("to_q.weight"))
    sd[key] = torch.zeros(3, 3)
    return sd


def _mixed_pe():
    sd = _v3_sd()
    key = next(k for k in sd if k.endswith(".pe"))
    sd[key] = torch.zeros(1, 24, sd[key].shape[2])
    return sd


def _channels_48():
    sd = {}
    for k, v in _v3_sd().items():
        shape = [48 if (s == 32 and not (k.endswith(".pe") and i == 1)) else s for i, s in enumerate(v.shape)]
        sd[k] = torch.zeros(shape) if k.startswith("down_blocks.0.") else v
    return sd


SD_IMAGE = {"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(2), "first_stage_model.x": torch.zeros(1)}
CASES = {
    "missing file": (lambda p: p / "nope.ckpt", CheckpointNotFoundError, "no such file"),
    "empty file": (_bytes(b"", "empty.safetensors"), CorruptCheckpointError, r"empty \(0 bytes\)"),
    "html page": (_bytes(b"<!DOCTYPE html><html>404</html>", "mm.ckpt"), CorruptCheckpointError, "HTML error page"),
    "random bytes": (_bytes(bytes(random.Random(0).choice(b"abcdefgh01234567") for _ in range(64)), "mm.pth"),
                     CorruptCheckpointError, "neither a safetensors file nor a PyTorch checkpoint"),
    "truncated safetensors": (_truncated_safetensors, CorruptCheckpointError, "damaged safetensors"),
    "bad safetensors header": (_bytes(struct.pack("<Q", 20) + b"{not json at all!!!", "mm.safetensors"),
                               CorruptCheckpointError, "damaged safetensors"),
    "truncated zip checkpoint": (_truncated_zip, CorruptCheckpointError, "damaged or truncated PyTorch"),
    "fake zip": (_bytes(b"PK\x03\x04" + b"\x00" * 60, "mm.ckpt"), CorruptCheckpointError, "damaged or truncated"),
    "pickle of a list": (_pickled([torch.zeros(1)]), CorruptCheckpointError, "holds a list"),
    "SD1.5 image checkpoint": (_write_sd(SD_IMAGE), NotAMotionModuleError, "Stable Diffusion image-model"),
    "SDXL image checkpoint": (_write_sd({"conditioner.embedders.0.x": torch.zeros(1)}), NotAMotionModuleError,
                              "SDXL image-model"),
    "image LoRA": (_write_sd({"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(1)}),
                   NotAMotionModuleError, "LoRA for the image model"),
    "MotionLoRA": (_write_sd({"down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0."
                              "attention_blocks.0.processor.to_q_lora.down.weight": torch.zeros(1, 32)}),
                   NotAMotionModuleError, "MotionLoRA.*loras="),
    "VAE": (_write_sd({"encoder.down.0.block.0.conv1.weight": torch.zeros(1)}), NotAMotionModuleError, "a VAE"),
    "unknown layout": (_write_sd({"foo.bar": torch.zeros(1), "baz": torch.zeros(1)}), UnknownLayoutError,
                       r"first keys: \[.*'foo.bar'"),
    "no tensors": (_pickled({"global_step": 3}), UnknownLayoutError, "holds no tensors"),
    "missing key": (_write_sd(_drop("up_blocks.1.motion_modules.2.temporal_transformer.proj_out.weight")),
                    UnknownLayoutError, "1 missing key.*proj_out.weight"),
    "module missing from a level": (_write_sd(_drop("up_blocks.0.motion_modules.2.")), UnknownLayoutError,
                                    "modules per level"),
    "shape mismatch": (_write_sd(_reshape_one), UnknownLayoutError, r"shape mismatch.*\(3, 3\)"),
    "mixed pe lengths": (_write_sd(_mixed_pe), ConfigError, r"disagree.*\[24, 32\]"),
    "channels not divisible by 32": (_write_sd(_channels_48), ConfigError, "48 is not a positive multiple of 32"),
    "folder without weights": (_folder({"config.json": "{}"}), CheckpointNotFoundError, "not a diffusers MotionAdapter"),
    "folder with broken config": (_folder({"config.json": "{oops", "diffusion_pytorch_model.safetensors": b""}),
                                  CorruptCheckpointError, "not valid JSON"),
}


def _unet_folder(tmp_path):
    d = tmp_path / "unet"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"_class_name": "UNet2DConditionModel"}))
    save_file(_v3_sd(), d / "diffusion_pytorch_model.safetensors")
    return d


CASES["diffusers UNet folder"] = (_unet_folder, NotAMotionModuleError, "UNet2DConditionModel, not a MotionAdapter")


def _with(sd_fn, **meta):
    def build(tmp_path):
        save_file(sd_fn(), tmp_path / "mm.safetensors", metadata=meta or None)
        return tmp_path / "mm.safetensors"
    return build


def _edit(key_suffix, value):
    def sd():
        d = _v3_sd()
        for k in [k for k in d if k.endswith(key_suffix)][:1]:
            d[k] = value(d[k]) if callable(value) else value
        return d
    return sd


MORE_CASES = {
    "empty norm weight": (_write_sd(_edit("norm.weight", torch.zeros(0))), UnknownLayoutError, r"shape \(0,\)"),
    "2-D position encoding": (_write_sd(_edit(".pe", lambda t: t[0])), UnknownLayoutError, "expected 3 non-empty"),
    "integer weights": (_write_sd(_edit("proj_in.weight", lambda t: t.long())), UnknownLayoutError,
                        "not floating point"),
    "damaged config metadata": (_with(_v3_sd, motion_core_config="{broken"), CorruptCheckpointError,
                                "motion_core_config metadata is damaged"),
    "non-numeric heads in unet_config": (_with(_v3_sd, unet_config=json.dumps(
        {"motion_module_kwargs": {"num_attention_heads": "eight"}})), CorruptCheckpointError, "heads='eight'"),
    "LoRA with alpha scales": (_write_sd({"down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0."
                                          "attention_blocks.0.to_q.alpha": torch.tensor(8.0)}),
                               NotAMotionModuleError, "MotionLoRA"),
}
CASES.update(MORE_CASES)


def test_damaged_pickles_never_escape_as_raw_exceptions(tmp_path):
    """Seeded byte flips and truncations of valid checkpoints, both pickle formats: only motion_core errors."""
    rng = random.Random(0)
    for legacy in (False, True):
        torch.save(_v3_sd(), tmp_path / "good.ckpt", _use_new_zipfile_serialization=not legacy)
        good = (tmp_path / "good.ckpt").read_bytes()
        for i in range(60):
            data = bytearray(good)
            if i % 3 == 0:
                data = data[: rng.randrange(1, len(data))]
            else:
                for _ in range(rng.randrange(1, 8)):
                    data[rng.randrange(len(data))] = rng.randrange(256)
            (tmp_path / "bad.ckpt").write_bytes(bytes(data))
            try:
                load_motion_module(tmp_path / "bad.ckpt", heads=2)
            except MotionCoreError:
                pass  # typed; a flip that lands in padding may also load fine


def test_contradicting_overrides_are_refused():
    with pytest.raises(ConfigError, match="pe_length=24 was asked for but the file stores a 32-frame"):
        load_motion_module(_v3_sd(), heads=2, pe_length=24)
    with pytest.raises(ConfigError, match="version 'sdxl-beta' is a sdxl module, not sd15"):
        load_motion_module(_v3_sd(), heads=2, version="sdxl-beta")
    with pytest.raises(ConfigError, match="heads=0"):
        load_motion_module(_v3_sd(), heads=0)


def test_every_error_type_is_a_motion_core_error():
    import motion_core.errors as errors
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if c.__module__ == errors.__name__]
    assert len(classes) >= 9 and all(issubclass(c, MotionCoreError) for c in classes)


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_input_gets_a_typed_error(tmp_path, case, capsys):
    build, error, message = CASES[case]
    path = build(tmp_path)
    with pytest.raises(error, match=message) as info:
        load_motion_module(path, heads=2)
    assert type(info.value).__module__ == "motion_core.errors"
    err = info.value  # no traceback from inside torch or safetensors chained to it
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)
    assert main(["inspect", str(path)]) == 2
    assert capsys.readouterr().err.startswith("error: ")
