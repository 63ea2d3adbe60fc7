"""`python -m motion_core <command>`: inspect, convert and create motion-module files; train motion modules.

Exit codes: 0 success, 1 unexpected failure (a bug: please report it), 2 bad input (the message says the fix).
"""

from __future__ import annotations

import argparse
import json
import sys

from .config import VERSION_DEFAULTS
from .errors import ConfigError, MotionCoreError

FAMILY_CHANNELS = {"sd15": (320, 640, 1280, 1280), "sdxl": (320, 640, 1280)}


def _print_description(d: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(d, sort_keys=True))
        return
    rows = [("file", d["path"]), ("format", f"{d['format']} ({d['container']})"), ("family", d["family"]),
            ("version", d["version"]), ("params", f"{d['params']:,}"), ("dtype", d["dtype"])]
    if d["format"] == "motion-lora":
        rows += [("lora rank", d["lora_rank"]), ("layers", d["layers"]), ("mid block", d["mid_block"])]
    elif d["format"] == "sparsectrl":
        rows += [("kind", f"{d['kind']} keyframes"), ("pe length", f"{d['pe_length']} frames"),
                 ("modules", f"{d['modules']} (down blocks only)")]
    else:
        rows += [("channels", ", ".join(map(str, d["channels"]))), ("heads", d["heads"]),
                 ("pe length", f"{d['pe_length']} frames"), ("mid block", d["mid_block"]),
                 ("modules", f"{d['modules']} ({d['layers_per_block']} per down level, "
                             f"{d['attention_blocks']} attention blocks each)")]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    for note in d["notes"]:
        print(f"note: {note}")


def cmd_inspect(args) -> None:
    from .formats import describe
    _print_description(describe(args.file), args.json)


def cmd_convert(args) -> None:
    from .formats import convert_file
    out = convert_file(args.src, args.dst, layout=args.layout, heads=args.heads, pe_length=args.pe_length,
                       version=args.version)
    print(f"wrote {out} ({args.layout} layout)")


def cmd_create(args) -> None:
    import torch

    from .config import MotionModuleConfig
    from .formats import save_motion_module
    from .module import MotionModule
    family, pe_length, mid = VERSION_DEFAULTS[args.version]
    try:
        channels = tuple(int(c) for c in args.channels.split(",")) if args.channels else FAMILY_CHANNELS[family]
    except ValueError:
        raise ConfigError(f"--channels {args.channels!r} is not a comma-separated list of integers, e.g. 32,64,64,64") from None
    config = MotionModuleConfig(family=family, version=args.version, channels=channels, mid_block=mid,
                                heads=args.heads, pe_length=pe_length if args.pe_length is None else args.pe_length)
    torch.manual_seed(args.seed)
    module = MotionModule(config)
    if args.init == "random":  # proj_out random too (other layers already are): the module changes its input
        with torch.no_grad():
            for name, p in module.named_parameters():
                if ".proj_out." in name:
                    p.normal_(std=0.02)
    out = save_motion_module(module, args.out, layout=args.layout)
    print(f"wrote {out}: {config.version} motion module, {module.num_parameters():,} parameters, {args.init} init")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m motion_core", description=(
        "AnimateDiff motion modules: inspect, convert and create checkpoint files; generate animations.\n"
        "Reads original AnimateDiff .ckpt/.pt/.pth/.safetensors (v1, v2, v3, SDXL beta, AnimateLCM, Lightning, "
        "whole-UNet training checkpoints), HotShot-XL, and diffusers MotionAdapter files or folders. Pickle-based "
        "files are read without running any code they contain."),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit codes: 0 ok, 2 bad input (the message says the fix), 1 a bug (please report it)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("inspect", help="print what a motion module or MotionLoRA file is",
                       description="Print a file's format, host family, version, channels per level, heads, "
                                   "position-encoding length, mid block, parameter count, dtype and LoRA rank.")
    s.add_argument("file", help="a checkpoint file, or a diffusers MotionAdapter folder")
    s.add_argument("--json", action="store_true", help="print one JSON object (keys: format, family, version, "
                                                       "pe_length, mid_block, params, dtype, lora_rank, ...)")
    s.set_defaults(run=cmd_inspect)

    s = sub.add_parser("convert", help="rewrite a motion module as safetensors, original or diffusers layout",
                       description="Convert any readable motion module to safetensors (written atomically, same "
                                   "dtype). With --layout diffusers and a DST without suffix, writes a MotionAdapter "
                                   "folder (config.json + diffusion_pytorch_model.safetensors).")
    s.add_argument("src", help="source file or folder")
    s.add_argument("dst", help="destination .safetensors file (or folder, for --layout diffusers)")
    s.add_argument("--layout", choices=("original", "diffusers"), default="original",
                   help="key layout to write (default: original, which every AnimateDiff loader reads)")
    _add_overrides(s)
    s.set_defaults(run=cmd_convert)

    s = sub.add_parser("create", help="write a new motion module (zero-initialised output, as training starts)",
                       description="Build a motion module from a version's defaults and save it.")
    s.add_argument("out", help="destination .safetensors file")
    s.add_argument("--version", choices=sorted(VERSION_DEFAULTS), default="v3", help="module version (default v3)")
    s.add_argument("--channels", help="channels per down level, e.g. 32,64,64,64 for a tiny test module "
                                      "(default: the full-size family's)")
    s.add_argument("--heads", type=int, default=8, help="attention heads (default 8, as every published module)")
    s.add_argument("--pe-length", type=int, help="frames the position encoding holds (default: the version's)")
    s.add_argument("--init", choices=("zero", "random"), default="zero",
                   help="zero: zero-initialised proj_out, the module leaves a UNet unchanged (default); "
                        "random: every weight random, for tests")
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    s.add_argument("--layout", choices=("original", "diffusers"), default="original", help="key layout to write")
    s.set_defaults(run=cmd_create)

    from . import cli_generate
    cli_generate.add_parser(sub)
    cli_generate.add_create_base_parser(sub)
    # argparse only: accelerate and the video readers load when `train` runs
    from .train.cli import add_parser as add_train_parser
    add_train_parser(sub)
    from .migrate.cli import add_parser as add_migrate_parser
    add_migrate_parser(sub)
    return p


def _add_overrides(s) -> None:
    s.add_argument("--heads", type=int, help="attention heads, when the file does not say (default 8)")
    s.add_argument("--pe-length", type=int, help="position-encoding length for files without one")
    s.add_argument("--version", help="module version for files that cannot tell (e.g. v1 for a re-saved v1 file)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except MotionCoreError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
