"""ComfyUI's samplers: their names, one sampling, the starting noise, VHS's Meta Batch Manager offset, progress for
training."""

from __future__ import annotations


def samplers_and_schedulers() -> tuple[list[str], list[str]]:
    try:
        import comfy.samplers
    except ImportError:
        return ["euler"], ["normal"]
    return list(comfy.samplers.KSampler.SAMPLERS), list(comfy.samplers.KSampler.SCHEDULERS)


def sample(model, noise, steps, cfg, sampler_name, scheduler, positive, negative, latent, denoise, seed,
           noise_mask=None):
    """Stock KSampler sampling (comfy.sample.sample) with its progress bar and latent previews."""
    import comfy.sample
    import latent_preview
    callback = latent_preview.prepare_callback(model, steps)
    return comfy.sample.sample(model, noise, steps, cfg, sampler_name, scheduler, positive, negative, latent,
                               denoise=denoise, noise_mask=noise_mask, callback=callback, seed=seed)


META_BATCH = ("VHS_BatchManager", {"tooltip": "VideoHelperSuite's Meta Batch Manager, when it samples this clip in "
                                     "batches: each batch's starting noise is then that batch's frames of the whole "
                                     "clip's noise (the noise, its shape over windows and FreeNoise carry across "
                                     "batches). Windows never span two batches."})
META_HIDDEN = {"prompt": "PROMPT", "unique_id": "UNIQUE_ID"}  # (to read the batch's number: VHS's protocol)


def meta_batch_offset(meta_batch, prompt, unique_id, input_name: str = "meta_batch") -> int:
    """The frames of the clip VideoHelperSuite's Meta Batch Manager (`meta_batch`, linked to this node's
    `input_name`) has already sampled: VHS re-queues the prompt once per batch, counting them in the manager node's
    `requeue` input. 0 without a manager."""
    if meta_batch is None or not isinstance(prompt, dict):
        return 0
    link = prompt.get(str(unique_id), {}).get("inputs", {}).get(input_name)
    if not isinstance(link, (list, tuple)) or not link:
        return 0
    requeue = prompt.get(str(link[0]), {}).get("inputs", {}).get("requeue", 0)
    return int(requeue) * int(getattr(meta_batch, "frames_per_batch", 0))


def prepare_noise(latent, seed):
    import comfy.sample
    return comfy.sample.prepare_noise(latent, seed)


def fix_empty_latent_channels(model, latent):
    import comfy.sample
    return comfy.sample.fix_empty_latent_channels(model, latent)


def training_callback(total: int):
    """on_step for motion_core.train: ComfyUI's progress bar, and ComfyUI's interrupt (raises
    InterruptProcessingException, after which the loop writes a resumable checkpoint)."""
    import comfy.model_management
    import comfy.utils
    bar = comfy.utils.ProgressBar(total)

    def on_step(step: int, loss: float) -> None:
        bar.update_absolute(step, total)
        comfy.model_management.throw_exception_if_processing_interrupted()
    return on_step
