"""Animation files: every format opens in a standard reader with the right frames, timing and metadata."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from motion_core import ConfigError
from motion_core.media import read_metadata, to_uint8, write_animation

META = {"prompt": "a red circle moving left", "seed": 42, "steps": 25}


def frames(n=12, h=32, w=48):
    """A bright square moving right over a dark background: each frame differs."""
    out = np.zeros((n, h, w, 3), dtype=np.float32)
    for i in range(n):
        out[i, 8:24, 2 + 2 * i: 18 + 2 * i] = (1.0, 0.2, 0.1)
    return torch.from_numpy(out)


@pytest.mark.parametrize("suffix", [".gif", ".webp"])
def test_gif_and_webp(tmp_path, suffix):
    path = write_animation(frames(), tmp_path / f"anim{suffix}", fps=10, loop=0, metadata=META)
    with Image.open(path) as im:
        assert im.n_frames == 12 and im.size == (48, 32)
        im.seek(5)
        im.load()
        assert im.info["duration"] == 100 and im.info.get("loop", 0) == 0
        px = np.asarray(im.convert("RGB"))[16, 2 + 2 * 5 + 8]
        assert px[0] > 200 and px[1] < 120  # the square is where frame 5 put it
    assert read_metadata(path) == META


def test_mp4_is_h264_with_the_frame_rate_and_a_sidecar(tmp_path):
    import av
    path = write_animation(frames(16, 33, 47), tmp_path / "anim.mp4", fps=8, metadata=META)  # odd sides
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.average_rate == 8
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        assert json.loads(container.metadata["comment"]) == META
    assert len(decoded) == 16 and decoded[0].shape == (32, 46, 3)
    assert read_metadata(path) == META and json.loads(path.with_suffix(".json").read_text()) == META


def test_png_folder_replaces_an_old_one_whole(tmp_path):
    write_animation(frames(12), tmp_path / "frames", metadata=META)
    folder = write_animation(frames(4), tmp_path / "frames", metadata={"seed": 1})
    names = sorted(p.name for p in folder.iterdir())
    assert names == [f"frame_{i:05d}.png" for i in range(4)]
    assert read_metadata(folder) == {"seed": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames"]  # no temporary folders left


def test_to_uint8_rounds_and_clips():
    x = torch.tensor([[[[0.0, 0.5, 1.2]]]])
    assert to_uint8(x).tolist() == [[[[0, 128, 255]]]]


@pytest.mark.parametrize("kwargs,match", [
    (dict(path="anim.avi"), "suffix .avi"), (dict(fps=0), "fps=0"), (dict(loop=-1), "loop=-1"),
    (dict(quality=0), "quality=0"), (dict(frames=torch.zeros(4, 8, 8)), "expected \\(frames, height, width, 3\\)")])
def test_bad_arguments_are_refused(tmp_path, kwargs, match):
    args = dict(frames=frames(2), path="anim.gif")
    args.update(kwargs)
    with pytest.raises(ConfigError, match=match):
        write_animation(args.pop("frames"), tmp_path / args.pop("path"), **args)


def frontend_webp_metadata(data: bytes) -> dict:
    """ComfyUI's front end, getWebpMetadata + parseExifData, ported line for line (its chunk walk included)."""
    import struct
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    offset, chunks = 12, {}
    while offset < len(data):
        length = struct.unpack("<I", data[offset + 4: offset + 8])[0]
        if data[offset: offset + 4] == b"EXIF":
            if data[offset + 8: offset + 14] == b"Exif\0\0":
                offset += 6
            exif = data[offset + 8: offset + 8 + length]
            little = exif[:2] == b"II"
            u16 = (lambda b: struct.unpack("<H" if little else ">H", b)[0])
            u32 = (lambda b: struct.unpack("<I" if little else ">I", b)[0])
            ifd = u32(exif[4:8])
            for i in range(u16(exif[ifd: ifd + 2])):
                entry = exif[ifd + 2 + 12 * i: ifd + 14 + 12 * i]
                kind, count, value = u16(entry[2:4]), u32(entry[4:8]), u32(entry[8:12])
                if kind == 2:  # ASCII
                    text = exif[value: value + count - 1].decode()
                    key, _, rest = text.partition(":")
                    chunks[key] = rest
            break
        offset += 8 + length
    return chunks


def test_webp_workflow_is_found_the_way_comfyui_front_end_reads_it(tmp_path):
    workflow = {"nodes": [{"id": 1, "type": "MC_SampleFrames"}], "links": []}
    path = write_animation(frames(16, 64, 64), tmp_path / "anim.webp",
                           metadata={"prompt": {"1": {"class_type": "MC_SampleFrames"}}, "workflow": workflow})
    found = frontend_webp_metadata(path.read_bytes())
    assert json.loads(found["workflow"]) == workflow
    assert json.loads(found["prompt"]) == {"1": {"class_type": "MC_SampleFrames"}}
