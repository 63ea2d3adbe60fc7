"""Training clips from a folder: video files (mp4 / webm / gif / ..., read with opencv) and folders of frames.

Captions come from `captions.csv` in the folder (columns `file,caption`), else from a sidecar `<clip>.txt`, else
are empty. Unreadable files are skipped with a warning that names them. A clip is `frames` frames `stride` apart
(spread evenly over the whole video when it is shorter), resized (short side) and centre-cropped to `size`, and
flipped or not as a whole. Every random choice comes from the generator the caller hands in, so a sample is a pure
function of (file, generator seed): resumed and multi-process runs see exactly the same clips.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from einops import rearrange

from ..errors import DataError, MissingDependencyError
from .config import TrainConfig

VIDEO_SUFFIXES = (".mp4", ".webm", ".gif", ".mov", ".avi", ".mkv", ".m4v")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


@dataclass(frozen=True)
class Clip:
    path: Path  # a video file, or a folder of frames (read in name order)
    frames: int  # frames it holds (from the container's header for videos: may be approximate)
    caption: str


def _cv2():
    try:
        import cv2
    except ImportError:
        raise MissingDependencyError("reading training videos needs opencv: pip install 'motion-core[train]' "
                                     "(or opencv-python-headless)") from None
    return cv2


def _frame_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _count_frames(path: Path) -> int:
    """Frames in a video or frame folder; 0 when it cannot be read."""
    cv2 = _cv2()
    if path.is_dir():
        files = _frame_files(path)
        return len(files) if files and cv2.imread(str(files[0])) is not None else 0
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened() or not capture.read()[0]:
            return 0
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        if count <= 0:  # some containers do not say: count by decoding
            count = 1
            while capture.grab():
                count += 1
        return count
    finally:
        capture.release()


def _captions(folder: Path) -> dict[str, str]:
    table = folder / "captions.csv"
    if not table.exists():
        return {}
    with open(table, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if rows and not {"file", "caption"} <= set(rows[0]):
        raise DataError(f"{table} needs the columns 'file' and 'caption'; it has {sorted(rows[0])}")
    return {row["file"]: row["caption"] for row in rows}


def _sidecar(path: Path) -> str:
    """`clip.mp4` -> `clip.txt`; a frame folder `clip/` -> `clip.txt` beside it or `clip/caption.txt`; else ""."""
    names = [path.with_suffix(".txt")] if path.is_file() else [path.parent / f"{path.name}.txt", path / "caption.txt"]
    found = next((p for p in names if p.is_file()), None)
    return found.read_text(encoding="utf-8").strip() if found else ""


def scan(folder: str | Path) -> list[Clip]:
    """Every readable clip in `folder` (videos and frame folders, sorted by name); warns naming each skipped file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"training data folder {folder} does not exist (or is not a folder)")
    table = _captions(folder)
    clips, skipped = [], []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not (path.is_dir() or path.suffix.lower() in VIDEO_SUFFIXES):
            continue
        count = _count_frames(path)
        if count == 0:
            skipped.append(path.name)
            continue
        clips.append(Clip(path, count, table[path.name] if path.name in table else _sidecar(path)))
    if skipped:
        warnings.warn(f"skipped {len(skipped)} unreadable clip(s) in {folder}: {', '.join(skipped)}", stacklevel=2)
    if not clips:
        raise DataError(f"no readable clips in {folder}: put video files ({', '.join(VIDEO_SUFFIXES)}) or folders "
                        f"of frames ({', '.join(IMAGE_SUFFIXES)}) there")
    return clips


def frame_indices(available: int, frames: int, stride: int, generator: torch.Generator) -> list[int]:
    """`frames` indices `stride` apart from a random start; evenly spread over the clip when it is too short."""
    span = (frames - 1) * stride + 1
    if available >= span:
        start = int(torch.randint(0, available - span + 1, (1,), generator=generator))
        return [start + k * stride for k in range(frames)]
    return np.linspace(0, available - 1, frames).round().astype(int).tolist()


def _read_video(path: Path, wanted: list[int]) -> list[np.ndarray]:
    """The frames at sorted indices `wanted` (RGB uint8); fewer if the video ends early."""
    cv2 = _cv2()
    capture = cv2.VideoCapture(str(path))
    out, index = {}, 0
    try:
        for target in sorted(set(wanted)):
            while index < target and capture.grab():
                index += 1
            ok, frame = capture.read() if index == target else (False, None)
            if not ok:
                break
            out[target] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            index += 1
    finally:
        capture.release()
    return [out[i] for i in wanted if i in out]


def _read_folder(path: Path, wanted: list[int]) -> list[np.ndarray]:
    cv2 = _cv2()
    files = _frame_files(path)
    frames = [cv2.imread(str(files[i]), cv2.IMREAD_COLOR) for i in wanted if i < len(files)]
    return [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in frames if f is not None]


def resize_crop(frame: np.ndarray, size: int) -> np.ndarray:
    """Resize so the short side is `size` (area filter when shrinking), then take the centre size x size square."""
    cv2 = _cv2()
    h, w = frame.shape[:2]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    frame = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    top, left = (nh - size) // 2, (nw - size) // 2
    return frame[top:top + size, left:left + size]


def load_clip(clip: Clip, config: TrainConfig, generator: torch.Generator) -> torch.Tensor:
    """(3, frames, size, size) float32 in [-1, 1], RGB."""
    wanted = frame_indices(clip.frames, config.frames, config.stride, generator)
    flip = config.flip and bool(torch.rand((), generator=generator) < 0.5)
    read = _read_folder if clip.path.is_dir() else _read_video
    frames = read(clip.path, wanted)
    if len(frames) < len(wanted):  # the header over-counted: spread over the frames that are really there
        frames = read(clip.path, list(range(clip.frames)))
        if not frames:
            raise DataError(f"{clip.path} could be opened but no frame decodes now; remove it from the data folder")
        warnings.warn(f"{clip.path} holds {len(frames)} frames, not {clip.frames}: clip spread over them", stacklevel=2)
        frames = [frames[i] for i in np.linspace(0, len(frames) - 1, config.frames).round().astype(int)]
    video = np.stack([resize_crop(f, config.size) for f in frames])  # (f, h, w, 3) uint8
    if flip:
        video = video[:, :, ::-1]
    video = torch.from_numpy(np.ascontiguousarray(video)).float().div_(127.5).sub_(1.0)
    return rearrange(video, "f h w c -> c f h w")


class ClipDataset(torch.utils.data.Dataset):
    """`dataset[(clip_index, seed)] -> (video (3, f, size, size), caption)`: the seed fixes crop start and flip."""

    def __init__(self, clips: list[Clip], config: TrainConfig):
        self.clips, self.config = clips, config

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, str]:
        index, seed = item
        clip = self.clips[index]
        return load_clip(clip, self.config, torch.Generator().manual_seed(seed)), clip.caption


def open_dataset(folder: str | Path, config: TrainConfig) -> ClipDataset:
    return ClipDataset(scan(folder), config)


# ---- which clips each step takes: a pure function of (seed, step, sample index) ---------------------------------

def sample_seed(seed: int, step: int, index: int, stream: str) -> int:
    """A 63-bit seed for one sample's draws of one kind ("data", "noise", "vae", "order")."""
    digest = hashlib.blake2b(f"{seed}:{step}:{index}:{stream}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


@functools.lru_cache(maxsize=4)
def _epoch_order(seed: int, epoch: int, length: int) -> tuple[int, ...]:
    generator = torch.Generator().manual_seed(sample_seed(seed, epoch, -1, "order"))
    return tuple(torch.randperm(length, generator=generator).tolist())


def global_indices(micro: int, rank: int, config: TrainConfig, world_size: int) -> list[int]:
    """Indices in the step's global batch of this process's samples at micro step `micro`: the global batch is
    laid out micro step by micro step, process by process, so 1 process x 2B, 2 processes x B and 2 micro steps
    x B take the same samples."""
    first = (micro * world_size + rank) * config.batch
    return list(range(first, first + config.batch))


def clip_for(step: int, index: int, config: TrainConfig, world_size: int, length: int) -> int:
    """The clip a sample trains on: the run walks through shuffled epochs of the data set."""
    n = step * config.batch * world_size * config.grad_accum + index
    return _epoch_order(config.seed, n // length, length)[n % length]


class StepBatches(torch.utils.data.Sampler):
    """Yields, per micro step from `start` to `config.steps`, this process's `[(clip index, data seed), ...]`."""

    def __init__(self, length: int, config: TrainConfig, world_size: int, rank: int, start: int):
        self.length, self.config, self.world_size, self.rank, self.start = length, config, world_size, rank, start

    def __iter__(self):
        c = self.config
        for step in range(self.start, c.steps):
            for micro in range(c.grad_accum):
                yield [(clip_for(step, g, c, self.world_size, self.length), sample_seed(c.seed, step, g, "data"))
                       for g in global_indices(micro, self.rank, c, self.world_size)]

    def __len__(self) -> int:
        return (self.config.steps - self.start) * self.config.grad_accum


def collate(samples: list[tuple[torch.Tensor, str]]) -> tuple[torch.Tensor, list[str]]:
    return torch.stack([video for video, _ in samples]), [caption for _, caption in samples]
