"""Training data: scanning a folder (videos, gifs, frame folders, captions, skipped files), clip sampling, the
pure schedules, the per-sample seeds that make multi-process and resumed runs draw the same samples."""

import warnings

import numpy as np
import pytest
import torch

pytest.importorskip("cv2", reason="training data is read with opencv (the train extra)")

from train_helpers import shape_frames, write_clips  # noqa: E402

from motion_core.errors import ConfigError, DataError  # noqa: E402
from motion_core.train import TrainConfig, alphas_cumprod, lr_at, open_dataset, scan  # noqa: E402
from motion_core.train.data import clip_for, frame_indices, global_indices, load_clip, resize_crop  # noqa: E402


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_clips(tmp_path_factory.mktemp("clips"))


def test_scan_reads_every_kind_with_captions_and_names_what_it_skips(data):
    with pytest.warns(UserWarning, match=r"skipped 2 unreadable clip\(s\).*broken\.mp4, empty_frames"):
        clips = scan(data)
    kinds = {c.path.suffix or "folder" for c in clips}
    assert kinds == {".mp4", ".gif", "folder"} and len(clips) == 8
    assert all(c.frames == 12 for c in clips)
    by_name = {c.path.name: c.caption for c in clips}
    assert by_name["clip0.mp4"] == "a red disc moving right"  # sidecar .txt
    assert by_name["clip1.gif"] == "a red square moving left"  # captions.csv
    assert by_name["clip2"] == "a green disc moving right"  # captions.csv, frame folder


def test_sidecar_captions_for_frame_folders(tmp_path):
    write_clips(tmp_path, corrupt=False)
    (tmp_path / "captions.csv").unlink()
    (tmp_path / "clip2.txt").write_text("beside the folder\n")
    (tmp_path / "clip5" / "caption.txt").write_text("inside the folder")
    by_name = {c.path.name: c.caption for c in scan(tmp_path)}
    assert (by_name["clip2"], by_name["clip5"], by_name["clip1.gif"]) == ("beside the folder", "inside the folder", "")


def test_bad_folders_raise_data_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        scan(tmp_path / "nope")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="no readable clips"):
        scan(tmp_path)


def test_frame_indices_stride_and_even_spread():
    g = torch.Generator().manual_seed(0)
    picks = [frame_indices(100, 8, 4, g) for _ in range(20)]
    assert all(np.diff(p).tolist() == [4] * 7 and 0 <= p[0] and p[-1] < 100 for p in picks)
    assert len({p[0] for p in picks}) > 1  # the start is random
    assert frame_indices(10, 8, 4, g) == [0, 1, 3, 4, 5, 6, 8, 9]  # too short for stride 4: spread evenly
    assert frame_indices(4, 8, 1, g) == [0, 0, 1, 1, 2, 2, 3, 3]


def test_load_clip_crops_scales_and_flips_the_whole_clip(data):
    clips = {c.path.name: c for c in scan_quietly(data)}
    config = TrainConfig(frames=8, stride=1, size=32)
    seen_flip = set()
    for seed in range(6):
        video = load_clip(clips["clip2"], config, torch.Generator().manual_seed(seed))
        assert video.shape == (3, 8, 32, 32) and video.dtype == torch.float32
        assert -1.0 <= video.min() and video.max() <= 1.0
        g = torch.Generator().manual_seed(seed)
        start = frame_indices(12, 8, 1, g)[0]
        flip = bool(torch.rand((), generator=g) < 0.5)
        want = np.stack([resize_crop(f, 32) for f in shape_frames(12, 40, "green", 1, False)[start:start + 8]])
        want = torch.from_numpy(np.ascontiguousarray(want[:, :, ::-1] if flip else want)).float() / 127.5 - 1
        assert torch.allclose(video.permute(1, 2, 3, 0), want, atol=1e-6)  # PNG frames are lossless
        seen_flip.add(flip)
    assert seen_flip == {True, False}


def test_mp4_and_gif_decode_close_to_what_was_written(data):
    clips = {c.path.name: c for c in scan_quietly(data)}
    config = TrainConfig(frames=12, stride=1, size=40, flip=False)
    for name, color, direction, square in (("clip0.mp4", "red", 1, False), ("clip1.gif", "red", -1, True)):
        video = load_clip(clips[name], config, torch.Generator().manual_seed(0))
        want = torch.from_numpy(shape_frames(12, 40, color, direction, square)).float() / 127.5 - 1
        err = (video.permute(1, 2, 3, 0) - want).abs().mean().item()
        assert err < 0.05, (name, err)  # lossy codecs: close, not exact


def test_samples_are_a_pure_function_of_seed_step_and_global_index():
    config = TrainConfig(batch=2, grad_accum=1)
    one = [clip_for(3, i, config, 1, 5) for i in global_indices(0, 0, config, 1)]
    halves = TrainConfig(batch=1, grad_accum=1)
    two = [clip_for(3, i, halves, 2, 5) for r in (0, 1) for i in global_indices(0, r, halves, 2)]
    accum = TrainConfig(batch=1, grad_accum=2)
    acc = [clip_for(3, i, accum, 1, 5) for m in (0, 1) for i in global_indices(m, 0, accum, 1)]
    assert one == two == acc
    epoch = sorted(clip_for(s, i, config, 1, 6) for s in range(3) for i in range(2))
    assert epoch == list(range(6))  # every clip once per epoch


def test_lr_schedule_and_betas():
    config = TrainConfig(lr=1e-4, warmup=4)
    assert [lr_at(s, config) for s in range(6)] == pytest.approx([2.5e-5, 5e-5, 7.5e-5, 1e-4, 1e-4, 1e-4])
    assert lr_at(0, TrainConfig()) == 1e-4
    diffusers = pytest.importorskip("diffusers")
    from diffusers.optimization import get_cosine_schedule_with_warmup
    cosine = TrainConfig(lr=1e-4, warmup=4, steps=20, lr_schedule="cosine")
    reference = get_cosine_schedule_with_warmup(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1e-4), 4, 20)
    assert [lr_at(s, cosine) for s in range(4, 20)] == pytest.approx([1e-4 * reference.lr_lambdas[0](s)
                                                                     for s in range(4, 20)], rel=1e-12)
    assert lr_at(4, cosine) == 1e-4 and 0 < lr_at(19, cosine) < 1e-6 and lr_at(3, cosine) == 1e-4  # warm-up as before
    with pytest.raises(ConfigError, match="lr_schedule='linear' is not one of"):
        TrainConfig(lr_schedule="linear")
    ddpm = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="linear")
    assert torch.equal(alphas_cumprod(TrainConfig()), ddpm.alphas_cumprod)
    sd = diffusers.DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    assert torch.equal(alphas_cumprod(TrainConfig(beta_schedule="scaled_linear")), sd.alphas_cumprod)


def test_impossible_settings_fail_early():
    for bad, match in ((dict(size=30), "multiple of 8"), (dict(frames=0), "frames=0"), (dict(lora_rank=0), "lora_rank"),
                       (dict(mixed_precision="fp8"), "mixed_precision"), (dict(caption_dropout=2.0), "caption_dropout")):
        with pytest.raises(ConfigError, match=match):
            TrainConfig(**bad)


def scan_quietly(folder):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return open_dataset(folder, TrainConfig()).clips
