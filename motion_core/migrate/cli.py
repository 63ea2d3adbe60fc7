"""`python -m motion_core migrate IN [-o OUT] [--check]`: convert an AnimateDiff-Evolved / ArtVentureX workflow."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(sub) -> None:
    s = sub.add_parser(
        "migrate", help="convert a workflow's AnimateDiff-Evolved / ArtVentureX nodes to motion_core's",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Read a ComfyUI workflow (UI or API .json, or the workflow embedded in a PNG / WebP / GIF / MP4 "
                    "/ WebM that ComfyUI, VideoHelperSuite or Save Animation wrote) and write it with every "
                    "AnimateDiff-Evolved (Gen1, Gen2, legacy) and ArtVentureX AnimateDiff node it knows replaced by "
                    "motion_core nodes with the same settings: links rewired, positions, sizes, groups, titles and "
                    "colours kept, every other node untouched, inside subgraphs too. Prints a report: what was "
                    "converted, what maps only approximately (and the value used), and each node left as it was "
                    "(why, and what is closest here).",
        epilog="exit codes: 0 converted (or nothing to convert), 2 the input is not a workflow")
    s.add_argument("input", help="a workflow .json, or a PNG / WebP / GIF / MP4 / WebM with one embedded")
    s.add_argument("-o", "--output", help="where to write the converted workflow (JSON, the form it came in; "
                                          "default: <input>.motion_core.json beside the input)")
    s.add_argument("--check", action="store_true", help="print the report only; write nothing")
    s.add_argument("--json", action="store_true", help="print the report as one JSON object")
    s.set_defaults(run=run)


def run(args) -> None:
    from . import migrate, read_workflow
    result = migrate(read_workflow(args.input))
    if args.json:
        print(json.dumps(result.report.to_json()))
    else:
        print("\n".join(result.report.lines()))
    if args.check:
        return
    source = Path(args.input)
    target = Path(args.output) if args.output else source.with_name(f"{source.stem}.motion_core.json")
    result.save(target)
    if not args.json:
        print(f"wrote {target}")
