"""A ComfyUI workflow from wherever it was saved: a `.json` file (UI format, API format, or a wrapper holding both),
or embedded in an output: PNG text chunks (ComfyUI, VideoHelperSuite's metadata PNG), WebP EXIF (ComfyUI's animated
WebP, motion_core's Save Animation), GIF comments, MP4 / MOV metadata (ComfyUI's `keys` / `ilst` items, and
VideoHelperSuite's `©cmt` comment) and WebM / MKV tags. Pure Python: no image or video library is needed.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import MotionCoreError


class NotAWorkflowError(MotionCoreError, ValueError):
    """The input holds no ComfyUI workflow (the message says what was found instead)."""


@dataclass
class Workflow:
    """What a file held: the UI graph (positions, groups, ...), the API prompt, or both; `form` names the layout
    ("ui", "api", "workflow+output", "prompt+workflow", ...), so a converted workflow is written back the same way."""
    ui: dict | None
    api: dict | None
    form: str
    source: str = "the input"


def is_api(data: Any) -> bool:
    return isinstance(data, dict) and bool(data) and all(isinstance(v, dict) and "class_type" in v
                                                          for v in data.values())


def is_ui(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("nodes"), list)


def _json(value: Any) -> Any:
    """A JSON value, parsing strings that hold JSON (VideoHelperSuite double-encodes its prompt)."""
    for _ in range(3):
        if not isinstance(value, (str, bytes)):
            return value
        try:
            value = json.loads(value)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
    return value


def from_data(data: Any, source: str = "the input") -> Workflow:
    """The workflow in parsed JSON: UI, API, or a wrapper ({"workflow", "output"}, {"prompt", "workflow"}, a
    /prompt body, a /history entry)."""
    data = _json(data)
    if is_ui(data):
        return Workflow(data, None, "ui", source)
    if is_api(data):
        return Workflow(None, data, "api", source)
    if isinstance(data, dict):
        for ui_key, api_key in (("workflow", "output"), ("workflow", "prompt"), ("Workflow", "Prompt")):
            ui, api = _json(data.get(ui_key)), _json(data.get(api_key))
            if is_ui(ui) or is_api(api):
                return Workflow(ui if is_ui(ui) else None, api if is_api(api) else None, f"{api_key}+{ui_key}",
                                source)
        extra = data.get("extra_data", {}).get("extra_pnginfo", {}) if isinstance(data.get("extra_data"), dict) else {}
        if is_api(data.get("prompt")):  # a POST /prompt body
            ui = _json(extra.get("workflow"))
            return Workflow(ui if is_ui(ui) else None, data["prompt"], "prompt body", source)
    keys = list(data)[:5] if isinstance(data, dict) else type(data).__name__
    raise NotAWorkflowError(f"{source} is JSON but not a ComfyUI workflow (no 'nodes' list, no nodes with "
                            f"'class_type'; found {keys}): export it from ComfyUI (Save, or Export (API))")


def read_workflow(path: str | Path) -> Workflow:
    """The workflow in a file, told apart by its first bytes."""
    path = Path(path)
    if not path.is_file():
        raise NotAWorkflowError(f"{path} does not exist or is not a file")
    data = path.read_bytes()
    source = str(path)
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        chunks = _png_text(data)
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        chunks = _webp_exif(data)
    elif data[:6] in (b"GIF87a", b"GIF89a"):
        chunks = _gif_comments(data)
    elif data[4:8] == b"ftyp":
        chunks = _mp4_metadata(data)
    elif data[:4] == b"\x1a\x45\xdf\xa3":
        chunks = _ebml_tags(data)
    else:
        try:
            return from_data(json.loads(data.decode("utf-8-sig")), source)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise NotAWorkflowError(f"{source} is neither JSON nor a PNG / WebP / GIF / MP4 / WebM ComfyUI wrote: "
                                    "give the workflow's .json or an image / video with one embedded") from None
    return _from_chunks(chunks, source)


def _from_chunks(chunks: dict[str, Any], source: str) -> Workflow:
    found = {k.lower(): _json(v) for k, v in chunks.items()}
    comment = found.get("comment")
    if isinstance(comment, dict):  # VideoHelperSuite before 2026: {"prompt": ..., "workflow": ...} in one comment
        found = {**{k.lower(): _json(v) for k, v in comment.items()}, **found}
    ui, api = found.get("workflow"), found.get("prompt")
    if is_ui(ui) or is_api(api):
        return Workflow(ui if is_ui(ui) else None, api if is_api(api) else None, "embedded", source)
    raise NotAWorkflowError(f"{source} holds no ComfyUI workflow (metadata keys found: {sorted(chunks) or 'none'}): "
                            "it was saved without metadata, or by a tool that does not embed the workflow")


def _png_text(data: bytes) -> dict[str, str]:
    out, pos = {}, 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind in (b"tEXt", b"comf"):
            key, _, value = body.partition(b"\0")
            out[key.decode("latin-1")] = value.decode("utf-8", "replace")
        elif kind == b"iTXt":
            key, _, rest = body.partition(b"\0")
            if rest[:1] == b"\0":  # uncompressed: flag, method, language\0, translated keyword\0, text
                rest = rest[2:].split(b"\0", 2)[-1]
                out[key.decode("latin-1")] = rest.decode("utf-8", "replace")
        elif kind == b"IEND":
            break
        pos += 12 + length
    return out


def _webp_exif(data: bytes) -> dict[str, str]:
    pos = 12
    while pos + 8 <= len(data):
        kind, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        if kind == b"EXIF":
            return _exif_strings(data[pos + 8:pos + 8 + size])
        pos += 8 + size + (size & 1)
    return {}


def _exif_strings(exif: bytes) -> dict[str, str]:
    """ASCII entries of IFD0 written as "key:value" (ComfyUI's "workflow:{...}" / "prompt:{...}")."""
    if exif.startswith(b"Exif\0\0"):
        exif = exif[6:]
    order = {b"II": "<", b"MM": ">"}.get(exif[:2])
    if order is None or len(exif) < 8:
        return {}
    out = {}
    offset = struct.unpack(order + "I", exif[4:8])[0]
    count = struct.unpack(order + "H", exif[offset:offset + 2])[0] if offset + 2 <= len(exif) else 0
    for i in range(count):
        entry = exif[offset + 2 + 12 * i:offset + 14 + 12 * i]
        if len(entry) < 12:
            break
        _, kind, n, where = struct.unpack(order + "HHII", entry)
        if kind != 2:
            continue
        text = (exif[where:where + n] if n > 4 else entry[8:8 + n]).rstrip(b"\0").decode("utf-8", "replace")
        key, sep, value = text.partition(":")
        if sep:
            out[key] = value
    return out


def _gif_comments(data: bytes) -> dict[str, str]:
    """Comment extensions (0x21 0xFE): a JSON object with workflow / prompt, or "key:value" text."""
    out = {}
    for m in re.finditer(rb"\x21\xfe", data):
        pos, parts = m.end(), []
        while pos < len(data) and data[pos]:
            parts.append(data[pos + 1:pos + 1 + data[pos]])
            pos += 1 + data[pos]
        text = b"".join(parts).decode("utf-8", "replace")
        parsed = _json(text)
        if isinstance(parsed, dict):
            out.update({k: v for k, v in parsed.items() if isinstance(k, str)})
        elif ":" in text:
            key, _, value = text.partition(":")
            out[key] = value
    return out


def _boxes(data: bytes, start: int, end: int):
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", data[pos + 8:pos + 16])[0], 16
        elif size == 0:
            size = end - pos
        if size < header:
            return
        yield kind, pos + header, pos + size
        pos += size


def _mp4_metadata(data: bytes) -> dict[str, str]:
    """moov/udta/meta: `keys` + `ilst` items (ComfyUI's SaveVideo, VideoHelperSuite since 2026) and the iTunes
    comment `©cmt` (VideoHelperSuite before)."""
    out = {}
    for kind, start, end in _boxes(data, 0, len(data)):
        if kind != b"moov":
            continue
        for kind2, s2, e2 in _boxes(data, start, end):
            if kind2 != b"udta":
                continue
            for kind3, s3, e3 in _boxes(data, s2, e2):
                if kind3 == b"meta":
                    out.update(_mp4_meta(data, s3 + 4, e3))  # skip version / flags
    return out


def _mp4_meta(data: bytes, start: int, end: int) -> dict[str, str]:
    names, items = [], {}
    for kind, s, e in _boxes(data, start, end):
        if kind == b"keys":
            pos = s + 8  # version / flags, entry count
            while pos + 8 <= e:
                size = struct.unpack(">I", data[pos:pos + 4])[0]
                names.append(data[pos + 8:pos + size].decode("utf-8", "replace"))
                pos += max(size, 8)
        elif kind == b"ilst":
            for item, si, ei in _boxes(data, s, e):
                for kind2, sd, ed in _boxes(data, si, ei):
                    if kind2 == b"data":
                        items[item] = data[sd + 8:ed].decode("utf-8", "replace")
    out = {}
    for item, value in items.items():
        index = struct.unpack(">I", item)[0]
        if item == b"\xa9cmt":
            out["comment"] = value
        elif 1 <= index <= len(names):
            out[names[index - 1]] = value
    return out


def _ebml_tags(data: bytes) -> dict[str, str]:
    """Matroska SimpleTags (TagName 0x45A3, TagString 0x4487): PROMPT / WORKFLOW / COMMENT."""
    out = {}
    for m in re.finditer(rb"\x45\xa3", data[:64 << 20]):
        name, end = _ebml_string(data, m.end())
        if name is None or name.upper() not in ("PROMPT", "WORKFLOW", "COMMENT"):
            continue
        at = data.find(b"\x44\x87", end, end + 16)
        if at >= 0:
            value, _ = _ebml_string(data, at + 2)
            if value is not None:
                out[name.lower()] = value
    return out


def _ebml_string(data: bytes, pos: int) -> tuple[str | None, int]:
    if pos >= len(data) or data[pos] == 0:
        return None, pos
    first = data[pos]
    width = 8 - first.bit_length() + 1
    size = first & (0xFF >> width)
    for b in data[pos + 1:pos + width]:
        size = (size << 8) | b
    start = pos + width
    return data[start:start + size].decode("utf-8", "replace"), start + size
