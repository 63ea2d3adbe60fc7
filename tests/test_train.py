"""Training in process on the synthetic clips with a tiny pixel-space UNet: the loss falls, the base stays
bit-identical, the checkpoint loads strict, accumulation equals a big batch, MotionLoRA mode, gradient
checkpointing, and an interrupted run (ComfyUI's cancel) resumes exactly."""

import json
import subprocess
import sys
import warnings

import pytest
import torch
from safetensors.torch import load_file

pytest.importorskip("cv2", reason="training data is read with opencv (the train extra)")
pytest.importorskip("accelerate", reason="training runs through Accelerate (the train extra)")
pytest.importorskip("diffusers", reason="diffusers provides the host UNet2DConditionModel")

from train_helpers import WordEncoder, compare_updates, record_first_grads, state, tiny_unet, write_clips  # noqa: E402

from motion_core import convert_file, describe, load_motion_module, save_motion_module  # noqa: E402
from motion_core.formats import from_original  # noqa: E402
from motion_core.errors import ConfigError  # noqa: E402
from motion_core.train import TrainConfig, new_motion_module, open_dataset, read_resume, train, trainable_copy  # noqa: E402

FAST = dict(frames=8, stride=1, size=16, lr=1e-3)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = write_clips(tmp_path_factory.mktemp("clips"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the corrupt files; test_train_data checks the warning
        return open_dataset(folder, TrainConfig(**FAST))


def random_start(seed=1, version="v3"):
    """A motion module with random proj_out (a 'published' module), so every parameter gets a gradient."""
    torch.manual_seed(seed)
    module = new_motion_module(tiny_unet(), version=version, heads=2)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if ".proj_out." in name:
                p.normal_(std=0.02)
    return module


def run(config, dataset, out, *, module=None, **kwargs):
    torch.set_num_threads(1)
    unet = tiny_unet()
    module = module if module is not None else new_motion_module(unet, heads=2)
    return unet, train(config, unet, module, WordEncoder(), dataset, out, progress=False, **kwargs)


def test_loss_falls_base_stays_and_checkpoint_loads_strict(dataset, tmp_path):
    torch.set_num_threads(1)
    unet, encoder = tiny_unet(), WordEncoder()
    module = new_motion_module(unet, heads=2)
    assert all(not p.any() for n, p in module.named_parameters() if ".proj_out." in n)  # zero-initialised
    unet_before, encoder_before = state(unet), state(encoder)
    config = TrainConfig(**FAST, steps=100, batch=2, save_every=50)
    trained = train(config, unet, module, encoder, dataset, tmp_path, progress=False)

    losses = [json.loads(line)["loss"] for line in (tmp_path / "loss.jsonl").read_text().splitlines()]
    first, last = sum(losses[:50]) / 50, sum(losses[-50:]) / 50
    print(f"loss: first 50 steps mean {first:.4f}, last 50 steps mean {last:.4f}")
    assert len(losses) == 100 and last < 0.8 * first
    for before, after in ((unet_before, state(unet)), (encoder_before, state(encoder))):
        assert all(torch.equal(before[k], after[k]) for k in before)  # frozen: bit-identical
    assert not any(p.requires_grad for p in unet.parameters())

    loaded = load_motion_module(tmp_path / "motion_module.safetensors")  # strict=True inside
    assert all(torch.equal(v, trained.state_dict()[k]) for k, v in loaded.state_dict().items())
    assert any(p.any() for n, p in loaded.named_parameters() if ".proj_out." in n)  # it learned
    d = describe(tmp_path / "motion_module.safetensors")
    assert (d["format"], d["family"], d["version"], d["heads"], d["pe_length"]) == ("original", "sd15", "v3", 2, 32)
    out = subprocess.run([sys.executable, "-m", "motion_core", "inspect", str(tmp_path / "motion_module.safetensors"),
                          "--json"], capture_output=True, text=True, check=True).stdout
    assert json.loads(out)["params"] == trained.num_parameters()
    assert read_resume(tmp_path / "resume.pt")["step"] == 100
    convert_file(tmp_path / "motion_module.safetensors", tmp_path / "adapter", layout="diffusers")
    from diffusers import MotionAdapter
    adapter = MotionAdapter.from_pretrained(str(tmp_path / "adapter"))  # diffusers reads the converted file
    ours = from_original(trained.state_dict(), "diffusers")
    assert len(ours) == len(adapter.state_dict())
    assert all(torch.equal(v, ours[k]) for k, v in adapter.state_dict().items())


def test_gradient_accumulation_equals_one_big_batch(dataset, tmp_path, monkeypatch):
    start = random_start()
    runs = {}
    for name, batch, accum in (("big", 2, 1), ("accum", 1, 2)):
        grads = {}
        monkeypatch.setattr(torch.optim.AdamW, "step", record_first_grads(grads))
        module = random_start()
        run(TrainConfig(**{**FAST, "lr": 1e-4}, steps=1, batch=batch, grad_accum=accum), dataset, tmp_path / name,
            module=module)
        monkeypatch.undo()
        runs[name] = grads, state(module)
    names = [n for n, _ in start.named_parameters()]
    grad_diff, weight_diff, left_out, raw, moved = compare_updates(
        runs["big"][0], runs["accum"][0], runs["big"][1], runs["accum"][1], state(start), names)
    print(f"accumulation 2 x B vs 2B: max grad diff {grad_diff:.2e}, max weight diff {weight_diff:.2e} "
          f"(raw {raw:.2e}, {left_out} elements with |grad| <= 1e-6 left out), max update {moved:.2e}")
    assert len(runs["big"][0]) == len(names)  # every parameter had a gradient
    assert grad_diff < 1e-6 and weight_diff < 1e-6 and moved > 5e-5


def test_motion_lora_trains_only_lora_and_merges_back_through_the_loader(dataset, tmp_path):
    base = random_start()
    base_file = save_motion_module(base, tmp_path / "base.safetensors")
    before = state(base)
    _, merged = run(TrainConfig(**FAST, steps=3, batch=1, lora_rank=4), dataset, tmp_path / "run", module=base)
    assert all(torch.equal(before[k], v) for k, v in state(base).items())  # the module itself never changed
    assert not any(hasattr(m, "parametrizations") for m in base.modules())  # LoRA taken off again

    lora = load_file(str(tmp_path / "run" / "motion_lora.safetensors"))
    projections = [k for k in before if k.endswith(("to_q.weight", "to_k.weight", "to_v.weight", "to_out.0.weight"))]
    assert len(lora) == 2 * len(projections) and all("_lora." in k and ".processor." in k for k in lora)
    key = "down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0"
    down, up = lora[f"{key}.processor.to_q_lora.down.weight"], lora[f"{key}.processor.to_q_lora.up.weight"]
    assert down.shape == (4, 32) and up.shape == (32, 4) and up.abs().max() > 0  # up starts at 0: it trained
    d = describe(tmp_path / "run" / "motion_lora.safetensors")
    assert (d["format"], d["lora_rank"]) == ("motion-lora", 4)

    loaded = load_motion_module(base_file, loras=[(tmp_path / "run" / "motion_lora.safetensors", 1.0)])
    want = before[f"{key}.to_q.weight"] + up @ down
    assert torch.allclose(loaded.state_dict()[f"{key}.to_q.weight"], want, atol=1e-7)
    assert all(torch.allclose(v, merged.state_dict()[k], atol=1e-7) for k, v in loaded.state_dict().items())
    changed = {k for k, v in loaded.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == set(projections)


@pytest.mark.parametrize("lora_rank", [None, 2])
def test_a_module_loaded_under_inference_mode_trains_through_a_copy_and_stays_bit_identical(dataset, tmp_path,
                                                                                            lora_rank):
    """ComfyUI loads every model under torch.inference_mode() (issue 21): train() names the cause and the fix for
    such a module, and trainable_copy() of it trains in both modes while the loaded module stays bit-identical."""
    path = save_motion_module(random_start(), tmp_path / "published.safetensors")
    with torch.inference_mode():
        loaded = load_motion_module(path)
    assert all(t.is_inference() for t in loaded.state_dict().values())
    before = {k: v.clone() for k, v in loaded.state_dict().items()}
    config = TrainConfig(**FAST, steps=2, batch=1, lora_rank=lora_rank)
    with pytest.raises(ConfigError, match="inference_mode.*trainable_copy"):
        run(config, dataset, tmp_path / "refused", module=loaded)
    copy = trainable_copy(loaded)
    assert not any(t.is_inference() for t in copy.state_dict().values()) and copy.info.format == loaded.info.format
    _, trained = run(config, dataset, tmp_path / "run", module=copy)
    assert all(torch.equal(v, before[k]) for k, v in loaded.state_dict().items())  # the loaded module: untouched
    changed = [k for k, v in trained.state_dict().items() if not torch.equal(v, before[k])]
    assert changed and (lora_rank is None or all(k.endswith("weight") and ".attention_blocks." in k for k in changed))


@pytest.mark.parametrize("version", ["v3", "v1"])  # v1: cross-frame GroupNorms inside checkpointed resnets
def test_gradient_checkpointing_gives_the_same_training(dataset, tmp_path, version):
    results = []
    for checkpointing in (False, True):
        module = random_start(version=version)
        unet, _ = run(TrainConfig(**FAST, steps=2, batch=1, gradient_checkpointing=checkpointing), dataset,
                      tmp_path / str(checkpointing), module=module)
        results.append(state(module))
        assert not unet.is_gradient_checkpointing and "residual" not in vars(module.down_blocks[0].motion_modules[0])
    assert all(torch.allclose(results[0][k], results[1][k], atol=1e-6, rtol=0) for k in results[0])


def test_an_interrupt_from_on_step_leaves_a_resumable_checkpoint(dataset, tmp_path):
    config = TrainConfig(**FAST, steps=5, batch=1, save_every=100)
    _, straight = run(config, dataset, tmp_path / "straight")

    class Interrupted(Exception):
        pass

    def stop_at_3(step, loss):
        if step == 3:
            raise Interrupted

    with pytest.raises(Interrupted):
        run(config, dataset, tmp_path / "cut", on_step=stop_at_3)
    assert read_resume(tmp_path / "cut" / "resume.pt")["step"] == 3
    _, resumed = run(config, dataset, tmp_path / "cut", resume=True)
    assert all(torch.equal(v, resumed.state_dict()[k]) for k, v in straight.state_dict().items())
    rows = [json.loads(line) for line in (tmp_path / "cut" / "loss.jsonl").read_text().splitlines()]
    want = [json.loads(line) for line in (tmp_path / "straight" / "loss.jsonl").read_text().splitlines()]
    assert [(r["step"], r["loss"]) for r in rows] == [(r["step"], r["loss"]) for r in want]


def test_latent_space_through_a_vae_and_an_sdxl_host(dataset, tmp_path):
    """A tiny AutoencoderKL as encode_video (posterior noise per clip: batch-independent), and an SDXL-layout UNet
    whose text encoder also returns the pooled embedding (added conditions built by the loop)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from unets import SDXL

    from motion_core.train import vae_encoder
    torch.set_num_threads(1)
    torch.manual_seed(0)
    vae = AutoencoderKL(block_out_channels=(32, 32), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=32).eval()
    encode = vae_encoder(vae, scaling_factor=0.5)
    video = torch.rand(2, 3, 8, 16, 16) * 2 - 1
    both = encode(video, [torch.Generator().manual_seed(s) for s in (1, 2)])
    alone = encode(video[1:], [torch.Generator().manual_seed(2)])
    assert both.shape == (2, 4, 8, 8, 8) and torch.allclose(both[1:], alone, atol=1e-6)

    unet = UNet2DConditionModel(**SDXL).eval()
    words = WordEncoder()

    def encode_text(captions):  # (hidden (b, 8, 32), pooled (b, 32)): SDXL's two outputs, tiny
        hidden = words(captions)
        return hidden, hidden.mean(1)

    module = new_motion_module(unet, heads=2)
    assert module.config.version == "sdxl-beta"
    vae_before, unet_before = state(vae), state(unet)
    train(TrainConfig(**FAST, steps=2, batch=1), unet, module, encode_text, dataset, tmp_path,
          encode_video=encode, progress=False)
    assert all(torch.equal(v, state(vae)[k]) for k, v in vae_before.items())
    assert all(torch.equal(v, state(unet)[k]) for k, v in unet_before.items())
    assert describe(tmp_path / "motion_module.safetensors")["family"] == "sdxl"
    assert any(p.any() for n, p in module.named_parameters() if ".proj_out." in n)



def test_dataloader_workers_decode_the_same_clips(dataset, tmp_path):
    results = []
    for workers in (0, 2):
        module = random_start()
        run(TrainConfig(**FAST, steps=2, batch=2, num_workers=workers), dataset, tmp_path / str(workers), module=module)
        results.append(state(module))
    assert all(torch.equal(results[0][k], results[1][k]) for k in results[0])


def test_timestep_bias_draws_noisier_timesteps_and_uniform_stays_as_before():
    from motion_core.train.loop import draw_timestep
    uniform = [int(draw_timestep(torch.Generator().manual_seed(s), 1000)) for s in range(2000)]
    assert uniform[:50] == [int(torch.randint(0, 1000, (1,), generator=torch.Generator().manual_seed(s)))
                            for s in range(50)]  # bias 1 is the randint draw runs were made with
    biased = [int(draw_timestep(torch.Generator().manual_seed(s), 1000, 3.0)) for s in range(2000)]
    assert min(biased) >= 0 and max(biased) <= 999
    share = sum(t >= 700 for t in biased) / len(biased)  # P(t >= 700) = 0.3 ** (1 / 3) = 0.67 for bias 3
    assert abs(share - 0.3 ** (1 / 3)) < 0.04, share
    assert abs(sum(t >= 700 for t in uniform) / len(uniform) - 0.3) < 0.04
    with pytest.raises(Exception, match="timestep_bias=0.5 must be at least 1"):
        TrainConfig(timestep_bias=0.5)


def test_v_loss_weighting_is_the_noise_error_over_alpha_bar_and_epsilon_stays_plain_mse():
    from motion_core.train.config import alphas_cumprod
    from motion_core.train.loop import diffusion_loss, draw_timestep
    latents = torch.randn(2, 4, 3, 2, 2, generator=torch.Generator().manual_seed(1))
    alphas = alphas_cumprod(TrainConfig())
    model = lambda x, t, text, added: 0.5 * x  # noqa: E731 - a stand-in that predicts noise badly, to get an error

    def loss(weighting):
        gens = [torch.Generator().manual_seed(s) for s in (3, 4)]
        return diffusion_loss(model, latents, None, gens, alphas, 1000, None, 3.0, weighting)
    gens = [torch.Generator().manual_seed(s) for s in (3, 4)]  # the same draws by hand
    t = torch.cat([draw_timestep(g, 1000, 3.0) for g in gens])
    noise = torch.stack([torch.randn(latents.shape[1:], generator=g) for g in gens])
    a = alphas[t].view(-1, 1, 1, 1, 1)
    error = (0.5 * (a.sqrt() * latents + (1 - a).sqrt() * noise) - noise) ** 2  # (b, c, f, h, w)
    assert torch.allclose(loss("epsilon"), error.mean(), rtol=1e-6)
    assert torch.allclose(loss("v"), (error / a).mean(), rtol=1e-6)
    assert float(loss("v")) > 5 * float(loss("epsilon"))  # the noisy draws weigh far more
    with pytest.raises(Exception, match="loss_weighting='x0' is not one of"):
        TrainConfig(loss_weighting="x0")


def test_noise_sharing_mixes_one_noise_for_the_clip_with_each_frames_own():
    from motion_core.train.config import alphas_cumprod
    from motion_core.train.loop import diffusion_loss
    latents = torch.zeros(2, 4, 3, 2, 2)  # the model sees sqrt(1 - alpha_bar) * noise: the noise itself, scaled
    alphas = alphas_cumprod(TrainConfig())
    seen = {}

    def model(x, t, text, added):
        seen["x"] = x / (1 - alphas[t]).sqrt().view(-1, 1, 1, 1, 1)
        return x

    def noise(sharing):
        gens = [torch.Generator().manual_seed(s) for s in (3, 4)]
        diffusion_loss(model, latents, None, gens, alphas, 1000, None, 1.0, "epsilon", sharing)
        return seen["x"]
    own, same = noise(0.0), noise(1.0)
    gens = [torch.Generator().manual_seed(s) for s in (3, 4)]  # sharing 0 draws exactly what it always drew:
    for g in gens:  # each clip's timestep, then its noise
        torch.randint(0, 1000, (1,), generator=g)
    assert torch.allclose(own, torch.stack([torch.randn(4, 3, 2, 2, generator=g) for g in gens]), atol=1e-5)
    assert torch.allclose(same, same[:, :, :1].expand_as(same), atol=1e-6)  # 1: every frame the same noise
    common = same[:, :, :1]
    mixed = noise(0.9)
    assert torch.allclose(mixed, 0.9 ** 0.5 * common + 0.1 ** 0.5 * own, atol=1e-5)
    with pytest.raises(Exception, match="noise_sharing=1.5 must lie in"):
        TrainConfig(noise_sharing=1.5)


def test_cli_passes_timestep_bias_and_no_flip(monkeypatch, tmp_path):
    import motion_core.train.cli as cli
    seen = {}

    def stop(folder, config):
        seen["config"] = config
        raise SystemExit(0)
    monkeypatch.setattr("motion_core.train.data.open_dataset", stop)
    from motion_core.cli import build_parser
    args = build_parser().parse_args(["train", "--data", str(tmp_path), "--base", str(tmp_path), "--out",
                                      str(tmp_path), "--timestep-bias", "2.5", "--no-flip", "--loss-weighting", "v",
                                      "--noise-sharing", "0.9"])
    with pytest.raises(SystemExit):
        cli.run(args)
    assert seen["config"].timestep_bias == 2.5 and seen["config"].flip is False
    assert seen["config"].loss_weighting == "v" and seen["config"].noise_sharing == 0.9
    args = build_parser().parse_args(["train", "--data", str(tmp_path), "--base", str(tmp_path), "--out",
                                      str(tmp_path)])
    with pytest.raises(SystemExit):
        cli.run(args)
    assert seen["config"].timestep_bias == 1.0 and seen["config"].flip is True
    assert seen["config"].loss_weighting == "epsilon" and seen["config"].noise_sharing == 0.0
