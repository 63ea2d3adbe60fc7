"""HTTP routes the web extension draws from (one source of truth: the browser only draws what these return).

  GET /motion_core/windows?frames=48&length=16&overlap=4&schedule=static&closed_loop=false&stride=1&step=0
      -> {"frames", "length", "overlap", "schedule", "closed_loop", "windows": [[frame, ...], ...], "per_step"}
  GET /motion_core/check?motion_module=NAME&checkpoint=NAME&loader=checkpoints&frames=48&context_length=0
      -> {"warnings": [sentence, ...], "module": {"family", "version", "pe_length"} | null, "model_family"}
  POST /motion_core/migrate {"workflow": <UI graph or API prompt>, "check": false}
      -> {"workflow": converted (absent with check), "changed": bool, "report": {...}, "lines": [sentence, ...]}
Bad parameters get HTTP 400 and {"error": sentence}, never a 500. The payload functions are pure (tested without
ComfyUI); `register()` wraps them for ComfyUI's aiohttp server.
"""

from __future__ import annotations

import os
from typing import Callable, Mapping

from ..motion_core.base import family_from_keys
from ..motion_core.context import SCHEDULES, ContextOptions, windows
from ..motion_core.errors import MotionCoreError
from ..motion_core.guards import graph_warnings

MAX_FRAMES = 4096  # Sample Frames' own limit
LIMITS = {"frames": (1, MAX_FRAMES), "length": (0, 128), "overlap": (0, 127), "stride": (1, 8), "step": (0, 10_000),
          "context_length": (0, 128)}


class BadRequest(ValueError):
    pass


def _int(query: Mapping[str, str], name: str, default: int | None = None) -> int:
    text = query.get(name)
    if text is None or text == "":
        if default is None:
            raise BadRequest(f"{name} is missing: pass ?{name}=<integer>")
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"{name}={text[:20]!r} is not an integer") from None
    low, high = LIMITS[name]
    if not low <= value <= high:
        raise BadRequest(f"{name}={value} must be between {low} and {high}")
    return value


def _bool(query: Mapping[str, str], name: str) -> bool:
    text = query.get(name, "false").lower()
    if text not in ("true", "false", "1", "0"):
        raise BadRequest(f"{name}={text[:20]!r} must be true or false")
    return text in ("true", "1")


def windows_payload(query: Mapping[str, str]) -> tuple[int, dict]:
    try:
        frames, length = _int(query, "frames"), _int(query, "length")
        overlap, stride, step = _int(query, "overlap", 4), _int(query, "stride", 1), _int(query, "step", 0)
        schedule, closed = query.get("schedule", "static"), _bool(query, "closed_loop")
        if schedule not in SCHEDULES:
            raise BadRequest(f"schedule={schedule[:20]!r} is not one of {', '.join(SCHEDULES)}")
        if length and overlap >= length:
            raise BadRequest(f"overlap={overlap} must be less than length={length}")
        if length == 0 or length >= frames and schedule != "looped":
            found = [list(range(frames))]  # no windows: the whole clip at once
        else:
            found = windows(frames, ContextOptions(length=length, overlap=overlap, schedule=schedule, stride=stride,
                                                   closed_loop=closed), step)
    except (BadRequest, MotionCoreError) as e:
        return 400, {"error": str(e)}
    return 200, {"frames": frames, "length": length, "overlap": overlap, "schedule": schedule, "closed_loop": closed,
                 "windows": found, "per_step": schedule != "static" and len(found) > 1}


def check_payload(query: Mapping[str, str], describe_module: Callable[[str], dict],
                  model_family: Callable[[str, str], str | None]) -> tuple[int, dict]:
    try:
        frames = _int(query, "frames", 0) or None
        context_length = _int(query, "context_length", 0)
        loader = query.get("loader", "checkpoints")
        if loader not in ("checkpoints", "diffusion_models", "unet"):
            raise BadRequest(f"loader={loader[:20]!r} is not checkpoints or diffusion_models")
    except BadRequest as e:
        return 400, {"error": str(e)}
    warnings, module, family = [], None, None
    if query.get("motion_module"):
        try:
            module = describe_module(query["motion_module"])
        except (MotionCoreError, OSError) as e:
            warnings.append(f"cannot read motion module {query['motion_module']}: {e}")
    if query.get("checkpoint"):
        family = model_family(loader, query["checkpoint"])
    if module is not None and module.get("format") == "motion-lora":
        warnings.append(f"{query['motion_module']} is a MotionLoRA, not a motion module: load it with Apply Motion "
                        "LoRA")
        module = None
    warnings += graph_warnings(frames=frames, context_length=context_length, module=module, model_family=family)
    brief = module and {k: module[k] for k in ("family", "version", "pe_length")}
    return 200, {"warnings": warnings, "module": brief, "model_family": family}


def migrate_payload(body) -> tuple[int, dict]:
    """The editor's Convert command: the open graph converted by motion_core.migrate (the CLI's code)."""
    from ..motion_core.migrate import migrate
    if not isinstance(body, dict) or not isinstance(body.get("workflow"), dict):
        return 400, {"error": 'send {"workflow": <the graph>} as JSON'}
    try:
        result = migrate(body["workflow"])
    except MotionCoreError as e:
        return 400, {"error": str(e)}
    out = {"changed": result.report.converted > 0, "report": result.report.to_json(), "lines": result.report.lines()}
    if not body.get("check"):
        out["workflow"] = result.data()
    return 200, out


_CACHE: dict[tuple, object] = {}


def _cached(path: str, compute):
    stat = os.stat(path)
    key = (path, stat.st_mtime_ns, stat.st_size, compute.__name__)
    if key not in _CACHE:
        if len(_CACHE) > 256:
            _CACHE.clear()
        _CACHE[key] = compute(path)
    return _CACHE[key]


def register() -> None:
    """Add the routes to ComfyUI's server (a no-op outside ComfyUI)."""
    from . import bridge
    server = bridge.prompt_server()
    if server is None:
        return
    from aiohttp import web

    from ..motion_core.formats import describe

    def describe_module(name: str) -> dict:
        return _cached(bridge.model_path(bridge.MODULE_FOLDER, name), describe)

    def model_family(loader: str, name: str) -> str | None:
        try:
            path = bridge.model_path("diffusion_models" if loader != "checkpoints" else "checkpoints", name)
        except (FileNotFoundError, OSError):
            return None
        return _cached(path, _family_of_file)

    def reply(status_body):
        status, body = status_body
        return web.json_response(body, status=status)

    @server.routes.get("/motion_core/windows")
    async def get_windows(request):
        return reply(windows_payload(request.rel_url.query))

    @server.routes.get("/motion_core/check")
    async def get_check(request):
        return reply(check_payload(request.rel_url.query, describe_module, model_family))

    @server.routes.post("/motion_core/migrate")
    async def post_migrate(request):
        try:
            body = await request.json()
        except ValueError:
            return reply((400, {"error": "the body is not JSON"}))
        return reply(migrate_payload(body))


def _family_of_file(path: str) -> str | None:
    """Only safetensors headers are read (cheap); pickles are not opened here."""
    if not path.endswith(".safetensors"):
        return None
    from safetensors import safe_open
    try:
        with safe_open(path, framework="pt") as f:
            return family_from_keys(f.keys())
    except (OSError, ValueError):
        return None
