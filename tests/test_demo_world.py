"""The demo's procedural world: deterministic renders, right captions, paths inside the frame, datasets on disk."""

import csv
import dataclasses

import numpy as np
import pytest

from demo import (BACKGROUNDS, COLOURS, MOTIONS, SHAPES, SIZES, STYLES, Scene, caption, render, render_clip,
                  sample_scenes, vocabulary, write_dataset)
from demo.world import BOUNCE, GROW, TRAVEL, extent, pose
from motion_core.errors import ConfigError
from motion_core.media import read_frames

BASE = Scene("circle", "red", "blue", "big", 0.5, 0.5)


def test_render_is_deterministic_uint8_of_the_asked_size():
    a, b = render(BASE, 32), render(BASE, 32)
    assert a.shape == (32, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert render(BASE, 48).shape == (48, 48, 3)
    # the centre is the object's colour, the corner the background's
    assert tuple(a[16, 16]) == COLOURS["red"] and tuple(a[0, 0]) == BACKGROUNDS["blue"]


@pytest.mark.parametrize("field,value", [("shape", "square"), ("shape", "triangle"), ("shape", "diamond"),
                                         ("colour", "yellow"), ("background", "gray"), ("size", "small"),
                                         ("x", 0.4), ("y", 0.6), ("style", "neon"), ("style", "checkerboard"),
                                         ("style", "striped"), ("style", "dotted")])
def test_every_attribute_changes_the_render(field, value):
    other = dataclasses.replace(BASE, **{field: value})
    assert not np.array_equal(render(BASE), render(other))


def test_shapes_differ_pairwise():
    images = [render(dataclasses.replace(BASE, shape=s)) for s in SHAPES]
    for i in range(len(images)):
        for j in range(i + 1, len(images)):
            assert np.abs(images[i].astype(int) - images[j]).sum() > 500, (SHAPES[i], SHAPES[j])


def test_styles_look_like_their_domain():
    plain = render(BASE)
    neon = render(dataclasses.replace(BASE, style="neon")).astype(np.float32) / 255
    board = render(dataclasses.replace(BASE, style="checkerboard"))
    assert neon[0, 0].max() < 0.2  # a dark background ...
    assert neon.max(-1).max() > 0.95  # ... with a bright outline
    corner = {tuple(p) for p in board[:8, :8].reshape(-1, 3)}  # the top-left 2x2 cells, away from the object
    assert corner == {BACKGROUNDS["blue"], tuple(np.rint(np.asarray(BACKGROUNDS["blue"]) * 0.5).astype(int))}
    assert len({tuple(p) for p in plain[:8, :8].reshape(-1, 3)}) == 1


def test_pose_follows_the_motion_model():
    for word, (dx, dy) in {"left": (-TRAVEL, 0), "right": (TRAVEL, 0), "up": (0, -TRAVEL), "down": (0, TRAVEL)}.items():
        x, y, scale = pose(dataclasses.replace(BASE, motion=word), 1.0)
        assert (x, y, scale) == pytest.approx((0.5 + dx, 0.5 + dy, 1.0))
    bouncing = dataclasses.replace(BASE, motion="bouncing")
    assert pose(bouncing, 0.25)[1] == pytest.approx(0.5 - BOUNCE) and pose(bouncing, 0.5)[1] == pytest.approx(0.5)
    growing = dataclasses.replace(BASE, motion="growing")
    assert [pose(growing, t)[2] for t in (0, 1)] == pytest.approx(list(GROW))
    assert pose(BASE, 0.7) == (0.5, 0.5, 1.0)


def test_clips_move_and_still_clips_do_not():
    still = render_clip(BASE, frames=4)
    assert still.shape == (4, 32, 32, 3) and all(np.array_equal(still[0], f) for f in still)
    moving = render_clip(dataclasses.replace(BASE, x=0.75, motion="left"), frames=4)
    assert not np.array_equal(moving[0], moving[-1])
    assert np.array_equal(render_clip(BASE, frames=1)[0], render(BASE))


def test_captions():
    assert caption(BASE) == "a red circle on a blue background"
    phrases = {"left": "moving left", "right": "moving right", "up": "moving up", "down": "moving down",
               "bouncing": "bouncing", "growing": "growing"}
    for word in MOTIONS:
        assert caption(dataclasses.replace(BASE, motion=word)) == f"a red circle {phrases[word]} on a blue background"
    triangle = Scene("triangle", "yellow", "gray", "small", 0.5, 0.5, "left", "checkerboard")
    assert caption(triangle) == "a yellow triangle moving left on a gray checkerboard background"
    assert caption(dataclasses.replace(BASE, style="neon")) == "a red circle on a blue background, neon style"


def test_vocabulary_covers_every_caption_word_and_nothing_else():
    vocab = vocabulary()
    assert vocab == sorted(set(vocab))
    seen = set()
    for style in STYLES:
        for motion in (True, False):
            for scene in sample_scenes(40, 3, motion=motion, style=style):
                seen.update(caption(scene).replace(",", " ").split())
    assert seen == set(vocab)  # 240 captions use every word, and no other


def test_sample_scenes_is_deterministic_varied_and_keeps_paths_inside():
    assert sample_scenes(20, 7, motion=True) == sample_scenes(20, 7, motion=True)
    assert sample_scenes(20, 7, motion=True) != sample_scenes(20, 8, motion=True)
    assert all(s.motion is None for s in sample_scenes(20, 7, motion=False))
    scenes = sample_scenes(120, 1, motion=True, style="neon")
    assert {s.motion for s in scenes} == set(MOTIONS) and {s.shape for s in scenes} == set(SHAPES)
    assert {s.size for s in scenes} == set(SIZES) and {s.style for s in scenes} == {"neon"}
    for s in scenes:
        assert s.colour != s.background
        for t in np.linspace(0, 1, 9):
            x, y, _ = pose(s, t)
            assert extent(s) < x < 1 - extent(s) and extent(s) < y < 1 - extent(s), (s, t)


def test_a_tuple_of_styles_mixes_them_in_proportion():
    scenes = sample_scenes(400, 2, motion=True, style=("plain", "plain", "striped", "dotted"), motions=("right",))
    counts = {style: sum(s.style == style for s in scenes) for style in ("plain", "striped", "dotted")}
    assert sum(counts.values()) == 400 and 170 < counts["plain"] < 230 and min(counts.values()) > 70, counts
    assert sample_scenes(5, 2, motion=False, style=("striped",)) == sample_scenes(5, 2, motion=False, style="striped")
    assert caption(dataclasses.replace(BASE, style="striped")) == "a red circle on a blue striped background"
    dots = render(dataclasses.replace(BASE, style="dotted", x=0.8, y=0.8))
    assert len({tuple(p) for p in dots[:8, :8].reshape(-1, 3)}) > 1  # a texture, away from the object
    with pytest.raises(ConfigError, match="style"):
        sample_scenes(3, 0, motion=True, style=())


def test_bad_input_fails_with_config_error():
    with pytest.raises(ConfigError, match="shape='hexagon'"):
        Scene("hexagon", "red", "blue", "big", 0.5, 0.5)
    with pytest.raises(ConfigError, match="style"):
        dataclasses.replace(BASE, style="watercolour")
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        dataclasses.replace(BASE, x=1.5)
    with pytest.raises(ConfigError, match="t=2"):
        render(BASE, t=2)
    with pytest.raises(ConfigError, match="style"):
        sample_scenes(3, 0, motion=True, style="sketch")


def test_write_dataset_clips_read_back(tmp_path):
    folder = write_dataset(tmp_path / "clips", 3, seed=5, frames=8, size=32, style="checkerboard")
    scenes = sample_scenes(3, 5, motion=True, style="checkerboard")
    with open(folder / "captions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows == [{"file": f"clip_{i:05d}", "caption": caption(s)} for i, s in enumerate(scenes)]
    for i, scene in enumerate(scenes):
        assert (folder / f"clip_{i:05d}.txt").read_text().strip() == caption(scene)
        names = sorted(p.name for p in (folder / f"clip_{i:05d}").iterdir())
        assert names == [f"frame_{j:05d}.png" for j in range(8)]
        assert np.array_equal(read_frames(folder / f"clip_{i:05d}"), render_clip(scene, 8, 32))  # PNG is lossless


def test_write_dataset_images(tmp_path):
    from PIL import Image
    folder = write_dataset(tmp_path / "stills", 4, seed=2, motion=False, size=24)
    scenes = sample_scenes(4, 2, motion=False)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["captions.csv"] + [f"image_{i:05d}{ext}" for i in range(4) for ext in (".png", ".txt")])
    for i, scene in enumerate(scenes):
        assert np.array_equal(np.asarray(Image.open(folder / f"image_{i:05d}.png")), render(scene, 24))
        assert (folder / f"image_{i:05d}.txt").read_text() == caption(scene) + "\n"
        assert " moving " not in caption(scene)


def test_write_dataset_of_one_motion_captioned_as_stills(tmp_path):
    """The demo's motion data: every clip moves right, its caption names no motion (one motion for every prompt)."""
    folder = write_dataset(tmp_path / "right", 4, seed=3, frames=8, motions=("right",), motion_words=False)
    scenes = sample_scenes(4, 3, motion=True, motions=("right",))
    assert {s.motion for s in scenes} == {"right"}
    for i, scene in enumerate(scenes):
        assert (folder / f"clip_{i:05d}.txt").read_text().strip() == caption(dataclasses.replace(scene, motion=None))
        clip = read_frames(folder / f"clip_{i:05d}")
        assert np.array_equal(clip, render_clip(scene, 8, 32)) and not np.array_equal(clip[0], clip[-1])
    with pytest.raises(ConfigError, match="motions"):
        sample_scenes(2, 0, motion=True, motions=("sideways",))

