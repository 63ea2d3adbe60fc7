"""Animations out: GIF, animated WebP, MP4 (H.264) and PNG frame folders, with settings embedded as metadata.

Every write is atomic (a temporary file renamed over the target), so an interrupted run never leaves a half file.
Metadata is a dict of JSON-able values, stored where each format has room for it:
  GIF   the comment extension, one JSON object;
  WebP  EXIF text tags "key:json", `prompt` at 0x0110 and the rest from 0x010F down, as ComfyUI's own saves do
        (so its front end restores a `workflow` dragged back in);
  MP4   the container's `comment` tag, plus a JSON sidecar beside the file;
  PNG   tEXt chunks, one per key, in every frame.
MP4 needs PyAV (`pip install av`, which ships its own H.264 encoder; ComfyUI already depends on it).
"""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError
from .formats.files import atomic_folder, atomic_write

FORMATS = ("gif", "webp", "mp4", "png")


def to_uint8(frames) -> np.ndarray:
    """(f, h, w, 3) uint8 from a (f, h, w, 3|4) float array/tensor in [0, 1] (ComfyUI's IMAGE) or uint8."""
    if hasattr(frames, "detach"):
        frames = frames.detach().cpu().float().numpy()
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] not in (3, 4) or 0 in frames.shape:
        raise ConfigError(f"frames have shape {frames.shape}; expected (frames, height, width, 3)")
    if frames.dtype != np.uint8:
        frames = np.clip(np.rint(frames.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(frames[..., :3])


def format_of(path: str | os.PathLike) -> str:
    suffix = Path(path).suffix.lower().lstrip(".")
    fmt = "png" if suffix in ("", "png") else suffix
    if fmt not in FORMATS:
        raise ConfigError(f"cannot write {path}: the suffix .{suffix} is not one of .gif, .webp, .mp4, or a folder / "
                          ".png for PNG frames")
    return fmt


def write_animation(frames, path: str | os.PathLike, *, fps: float = 8.0, loop: int = 0,
                    metadata: dict[str, Any] | None = None, quality: int = 90) -> Path:
    """Write `frames` to `path` in the format its suffix names; returns the path written (a folder for PNG).

    fps: frames per second; loop: 0 = forever, n = play n times (GIF / WebP); quality: WebP / MP4, 1..100."""
    if not 0 < fps <= 240:
        raise ConfigError(f"fps={fps} must be above 0 and at most 240")
    if loop < 0:
        raise ConfigError(f"loop={loop} must be 0 (forever) or a positive count")
    if not 1 <= quality <= 100:
        raise ConfigError(f"quality={quality} must be between 1 and 100")
    images = to_uint8(frames)
    metadata = metadata or {}
    path = Path(path)
    fmt = format_of(path)
    if fmt == "png":
        return _write_png_folder(images, path.with_suffix("") if path.suffix else path, metadata)
    writer = {"gif": _write_gif, "webp": _write_webp, "mp4": _write_mp4}[fmt]
    atomic_write(path, lambda tmp: writer(images, tmp, fps, loop, metadata, quality))
    if fmt == "mp4" and metadata:
        sidecar = path.with_suffix(".json")
        atomic_write(sidecar, lambda tmp: Path(tmp).write_text(json.dumps(metadata, indent=2, default=str)))
    return path


def _pil_frames(images):
    from PIL import Image
    return [Image.fromarray(frame) for frame in images]


def _write_gif(images, tmp, fps, loop, metadata, quality):
    first, *rest = _pil_frames(images)
    options = {"comment": json.dumps(metadata, default=str)} if metadata else {}
    # GIF durations are in 10 ms steps; loop=0 repeats forever, and Pillow writes no loop block for None
    first.save(tmp, format="GIF", save_all=True, append_images=rest, duration=round(1000 / fps),
               loop=loop if loop else 0, disposal=2, **options)


def _write_webp(images, tmp, fps, loop, metadata, quality):
    first, *rest = _pil_frames(images)
    exif = first.getexif()
    tag = 0x010F
    for key, value in metadata.items():
        text = f"{key}:{json.dumps(value, default=str)}"
        if key == "prompt":
            exif[0x0110] = text
        else:
            exif[tag] = text
            tag -= 1
    first.save(tmp, format="WEBP", save_all=True, append_images=rest, duration=round(1000 / fps), loop=loop,
               quality=quality, lossless=False, method=4, exif=exif)


def _write_mp4(images, tmp, fps, loop, metadata, quality):
    try:
        import av
    except ImportError:
        raise ConfigError("writing MP4 needs PyAV: pip install av (it ships its own H.264 encoder)") from None
    f, h, w, _ = images.shape
    even = images[:, : h - h % 2, : w - w % 2] if (h % 2 or w % 2) else images  # yuv420p needs even sides
    if even.shape[1] == 0 or even.shape[2] == 0:
        raise ConfigError(f"frames of {w}x{h} px are too small for H.264 (at least 2x2)")
    with av.open(tmp, mode="w", format="mp4") as container:
        if metadata:
            container.metadata["comment"] = json.dumps(metadata, default=str)
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height = even.shape[2], even.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(round(18 + (100 - quality) * 0.33))}  # 100 -> 18 (visually lossless), 1 -> 51
        for frame in even:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _write_png_folder(images, folder: Path, metadata) -> Path:
    from PIL.PngImagePlugin import PngInfo
    info = PngInfo()
    for key, value in metadata.items():
        info.add_text(key, json.dumps(value, default=str))

    def write(tmp: Path) -> None:
        for i, image in enumerate(_pil_frames(images)):
            image.save(tmp / f"frame_{i:05d}.png", pnginfo=info)
    return atomic_folder(folder, write)


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata `write_animation` embedded (for tests, and for reproducing a result)."""
    path = Path(path)
    fmt = format_of(path)
    if fmt == "png":
        from PIL import Image
        with Image.open(sorted(path.glob("*.png"))[0]) as image:
            return {k: json.loads(v) for k, v in image.text.items()}
    if fmt == "gif":
        from PIL import Image
        with Image.open(path) as image:
            comment = image.info.get("comment")
            return json.loads(comment) if comment else {}
    if fmt == "webp":
        from PIL import Image
        with Image.open(path) as image:
            exif = image.getexif()
            return {k: json.loads(v) for k, _, v in (str(t).partition(":") for t in exif.values() if ":" in str(t))}
    sidecar = path.with_suffix(".json")
    return json.loads(sidecar.read_text()) if sidecar.exists() else {}


def read_frames(path: str | os.PathLike) -> np.ndarray:
    """(f, h, w, 3) uint8 frames of a GIF / WebP / MP4 (or any video PyAV reads), a folder of images, or one image
    (PNG / JPEG / BMP: one frame)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"no such video: {path}")
    if path.is_dir():
        from PIL import Image
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"))
        if not files:
            raise ConfigError(f"{path} holds no .png / .jpg / .webp frames")
        return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in files])
    if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp"):  # one still image: a one-frame clip
        from PIL import Image
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))[None]
    if path.suffix.lower() in (".gif", ".webp"):
        from PIL import Image, ImageSequence
        with Image.open(path) as image:
            return np.stack([np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(image)])
    try:
        import av
    except ImportError:
        raise ConfigError(f"reading {path.suffix} video needs PyAV: pip install av") from None
    try:
        with av.open(str(path)) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    except (av.error.FFmpegError, IndexError) as e:
        raise ConfigError(f"cannot read video {path}: {e}") from None
    if not frames:
        raise ConfigError(f"{path} holds no video frames")
    return np.stack(frames)


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """(f, h, w) float32 in [0, 1]: an image, a folder of images or a video as a mask (its brightness; white = 1)."""
    if not Path(path).exists():
        raise ConfigError(f"no such mask file: {path} (an image, a video or a folder of frames; white = motion)")
    return read_frames(path).astype(np.float32).mean(axis=-1) / 255.0


def fit_frames(frames, width: int, height: int):
    """(f, h, w, 3) uint8 / float frames -> (f, 3, height, width) float32 in [0, 1]: scaled to cover, centre-cropped."""
    import torch
    import torch.nn.functional as F
    x = torch.as_tensor(np.asarray(frames) if not hasattr(frames, "detach") else frames)
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    x = x.permute(0, 3, 1, 2)  # f h w c -> f c h w
    h, w = x.shape[-2:]
    s = max(height / h, width / w)
    size = (max(height, round(h * s)), max(width, round(w * s)))
    if size != (h, w):
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    top, left = (size[0] - height) // 2, (size[1] - width) // 2
    return x[..., top:top + height, left:left + width].clamp(0, 1).contiguous()
