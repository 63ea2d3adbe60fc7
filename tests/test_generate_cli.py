"""`python -m motion_core generate` end to end (subprocess, as a user runs it): the files it writes open in other
readers (MP4 with opencv, GIF with PIL), carry the settings, and bad arguments exit 2 with the fix."""

import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("diffusers", reason="generate runs over diffusers components")
pytest.importorskip("transformers", reason="generate's text encoder comes from transformers")


def run(*args, check=True):
    p = subprocess.run([sys.executable, "-m", "motion_core", *map(str, args)], capture_output=True, text=True)
    if check:
        assert p.returncode == 0, p.stderr[-3000:]
    return p


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    run("create-base", d / "base", "--seed", 1)
    run("create", d / "mm.safetensors", "--version", "v3", "--channels", "32,64,64,64", "--heads", "2",
        "--init", "random")
    return d


def test_generate_writes_files_other_readers_open(models, tmp_path):
    cv2 = pytest.importorskip("cv2", reason="opencv reads the MP4 back")
    from PIL import Image, ImageSequence

    from motion_core.media import read_metadata
    gif, mp4, webp, png = (tmp_path / n for n in ("a.gif", "a.mp4", "a.webp", "frames"))
    p = run("generate", "--model", models / "base", "--motion-module", models / "mm.safetensors",
            "--prompt", "0: a cat", "--prompt", "8: a dog", "--frames", 12, "--steps", 2, "--size", "64x48",
            "--seed", 5, "--fps", 10, "--out", gif, "--out", mp4, "--out", webp, "--out", png, "--quiet")
    assert p.stdout.count("wrote") == 4
    video = cv2.VideoCapture(str(mp4))
    frames = []
    while True:
        ok, frame = video.read()
        if not ok:
            break
        frames.append(frame)
    assert len(frames) == 12 and frames[0].shape == (48, 64, 3)
    assert video.get(cv2.CAP_PROP_FPS) == pytest.approx(10)
    with Image.open(gif) as image:
        durations = [f.info["duration"] for f in ImageSequence.Iterator(image)]
        assert image.size == (64, 48)
    assert len(durations) == 12 and set(durations) == {100}
    assert len(list(png.glob("*.png"))) == 12
    for path in (gif, mp4, webp, png):
        settings = read_metadata(path)["motion_core"]
        assert (settings["frames"], settings["seed"], settings["width"], settings["height"]) == (12, 5, 64, 48)
        assert settings["prompt"] == "0: a cat\n8: a dog" and settings["steps"] == 2
    assert json.loads(mp4.with_suffix(".json").read_text())["motion_core"]["scheduler"]


def test_same_seed_same_animation_and_looped_context(models, tmp_path):
    from motion_core.media import read_frames
    common = ["generate", "--model", models / "base", "--motion-module", models / "mm.safetensors",
              "--prompt", "a cat", "--frames", 20, "--steps", 1, "--size", "64x64", "--quiet"]
    run(*common, "--out", tmp_path / "a", "--context-length", 8)
    run(*common, "--out", tmp_path / "b", "--context-length", 8)
    run(*common, "--out", tmp_path / "c", "--context-length", 8, "--context-schedule", "looped", "--closed-loop")
    a, b, c = (read_frames(tmp_path / n) for n in "abc")
    assert a.shape == (20, 64, 64, 3) and np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_free_init_and_constant_noise_write_their_settings(models, tmp_path):
    from motion_core.media import read_frames, read_metadata
    run("generate", "--model", models / "base", "--motion-module", models / "mm.safetensors", "--prompt", "a cat",
        "--frames", 8, "--steps", 2, "--size", "64x64", "--quiet", "--free-init", 2, "--free-init-filter", "box",
        "--noise", "constant", "--out", tmp_path / "a.gif")
    settings = read_metadata(tmp_path / "a.gif")["motion_core"]
    assert settings["free_init"]["iterations"] == 2 and settings["free_init"]["filter"] == "box"
    assert settings["noise"] == "constant" and read_frames(tmp_path / "a.gif").shape == (8, 64, 64, 3)


@pytest.mark.parametrize("args, message", [
    (["--size", "64"], "WIDTHxHEIGHT"), (["--size", "60x64"], "multiple of 8"), (["--frames", "0"], "frames=0"),
    (["--out", "x.avi"], ".avi"), (["--motion-module", "missing.ckpt"], "missing.ckpt"),
    (["--model", "nowhere"], "nowhere"), (["--frames", "48", "--context-length", "0"], "holds 32 frames"),
    (["--context-overlap", "16", "--context-length", "16", "--frames", "40"], "overlap 16"),
    (["--init-video", "none.mp4"], "none.mp4"), (["--free-init", "0"], "free_init=0"),
    (["--free-init", "2", "--free-init-spatial", "0"], "spatial stop frequency 0.0"),
    (["--noise", "pink"], "invalid choice: 'pink'"),
    (["--motion-strength", "0:1, x"], "'x' is not frame:value"), (["--motion-strength", "0:1, 4:1.5"], "strength=1.5"),
    (["--motion-start", "1.5"], "start=1.5 must lie in [0, 1]"), (["--motion-mask", "none.png"], "none.png")])
def test_bad_arguments_exit_2_with_the_fix(models, tmp_path, args, message):
    base = {"--model": models / "base", "--motion-module": models / "mm.safetensors", "--prompt": "a cat",
            "--out": tmp_path / "x.gif", "--steps": "1", "--size": "64x64", "--frames": "8"}
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value
    p = run("generate", *[x for kv in base.items() for x in kv], check=False)
    assert p.returncode == 2, p.stderr[-2000:]
    assert message in p.stderr


def test_motion_lora_strength_is_applied(models, tmp_path):
    from safetensors.torch import save_file
    from test_lora import make_lora

    from motion_core import load_motion_module
    from motion_core.media import read_frames
    save_file(make_lora(load_motion_module(models / "mm.safetensors"), seed=3), tmp_path / "lora.safetensors")
    common = ["generate", "--model", models / "base", "--motion-module", models / "mm.safetensors", "--prompt",
              "a cat", "--frames", 8, "--steps", 2, "--size", "64x64", "--quiet"]
    run(*common, "--out", tmp_path / "plain")
    run(*common, "--out", tmp_path / "zero", "--motion-lora", f"{tmp_path / 'lora.safetensors'}:0")
    run(*common, "--out", tmp_path / "lora", "--motion-lora", f"{tmp_path / 'lora.safetensors'}:1.5")
    plain, zero, lora = (read_frames(tmp_path / n) for n in ("plain", "zero", "lora"))
    assert np.array_equal(plain, zero) and not np.array_equal(plain, lora)


def test_motion_mask_curve_and_start(models, tmp_path):
    from PIL import Image

    from motion_core.media import read_frames, read_metadata
    black, half = np.zeros((64, 64), np.uint8), np.zeros((64, 64), np.uint8)
    half[:, :32] = 255
    Image.fromarray(black).save(tmp_path / "black.png")
    Image.fromarray(half).save(tmp_path / "half.png")
    (tmp_path / "three").mkdir()
    for i in range(3):
        Image.fromarray(half).save(tmp_path / "three" / f"{i}.png")
    common = ["generate", "--model", models / "base", "--motion-module", models / "mm.safetensors", "--prompt",
              "a cat", "--frames", 8, "--steps", 2, "--size", "64x64", "--quiet"]
    run(*common, "--out", tmp_path / "still", "--motion-strength", 0)
    run(*common, "--out", tmp_path / "full")
    run(*common, "--out", tmp_path / "black", "--motion-mask", tmp_path / "black.png")
    run(*common, "--out", tmp_path / "shaped.gif", "--motion-mask", tmp_path / "half.png", "--motion-strength",
        "0:1, 7:0.2", "--motion-start", 0.3)
    still, full, black_out, shaped = (read_frames(tmp_path / n) for n in ("still", "full", "black", "shaped.gif"))
    assert np.array_equal(black_out, still)  # a black mask everywhere: the plain image model
    assert not np.array_equal(shaped, still) and not np.array_equal(shaped, full)
    settings = read_metadata(tmp_path / "shaped.gif")["motion_core"]
    assert settings["motion_strength"] == "0:1, 7:0.2" and settings["motion_mask"] == [1, 64, 64]
    assert settings["motion_start"] == 0.3 and settings["motion_scale"] == 1.0
    p = run(*common, "--out", tmp_path / "x.gif", "--motion-mask", tmp_path / "three", check=False)
    assert p.returncode == 2 and "the motion mask has 3 frames but the clip has 8" in p.stderr
