"""ComfyUI's models: dtypes and layer operations, the motion module as a managed, patched model, loading, the beta
schedule as an object patch."""

from __future__ import annotations


def default_dtypes():
    """(storage, compute): the dtypes ComfyUI gives a UNet on this machine by default (its --*-unet flags and the
    device): fp16 on most GPUs, fp32 on a CPU; fp8 storage computing in fp16 / bf16 / fp32 under the fp8 flags."""
    import comfy.model_management as mm
    storage = mm.unet_dtype()
    return storage, mm.unet_manual_cast(storage, mm.get_torch_device()) or storage


def model_dtypes(model):
    """(storage, compute) dtypes of a MODEL's UNet: its weights', and the one it runs in (manual cast)."""
    storage = model.model.get_dtype()
    return storage, model.model.manual_cast_dtype or storage


def operations(weight_dtype, compute_dtype):
    """ComfyUI's layer operations for weights stored in `weight_dtype` computing in `compute_dtype`, picked as core
    picks them for its models and ControlNets: they cast per layer when the two differ, and let ComfyUI load a model
    partly (layers left on the offload device cast their weights to the input's device as they run)."""
    import comfy.ops
    return comfy.ops.pick_operations(weight_dtype, compute_dtype, disable_fast_fp8=True)


def motion_for(module, storage, compute, requested=None):
    """The motion module as it runs beside a UNet stored in `storage` computing in `compute`: weights in
    motion_core.precision.module_dtype (or `requested`), position encodings in the compute dtype, layers from
    ComfyUI's operations for that pair. `module` itself when it is so already; else a copy (the input unchanged)
    that shares every tensor needing no cast."""
    from ...motion_core.formats import copy_module
    from ...motion_core.precision import module_dtype
    dtype = module_dtype(storage, compute, requested)
    ops = operations(dtype, compute)
    pe = {m.pe.dtype for m in module.modules() if hasattr(m, "pe")}
    if module.operations is ops and {p.dtype for p in module.parameters()} == {dtype} and pe <= {compute}:
        return module
    return copy_module(module, operations=ops, dtype=dtype, pe_dtype=compute)


def patcher_injection(inject, eject):
    import comfy.patcher_extension
    return comfy.patcher_extension.PatcherInjection(inject=inject, eject=eject)


def module_patcher(module, model):
    """The motion module as a ModelPatcher, so ComfyUI's memory management loads it beside `model`."""
    import comfy.model_patcher
    return comfy.model_patcher.ModelPatcher(module, load_device=model.load_device, offload_device=model.offload_device)


def model_sampling_with_betas(model, beta_schedule: str, linear_end: float):
    """A model_sampling object like the model's own (same prediction type), over AnimateDiff's training betas:
    `sqrt_linear` = linspace(0.00085, linear_end) (SD1.5 modules), `linear` = its sqrt-spaced square (SDXL beta),
    `lcm` = sqrt_linear betas on LCM's distilled timesteps with LCM's boundary conditions (AnimateLCM), as core's
    ModelSamplingDiscrete node builds it for "lcm"."""
    if beta_schedule == "lcm":
        import copy

        from comfy_extras.nodes_model_advanced import LCM, ModelSamplingDiscreteDistilled

        class AnimateLCMSampling(ModelSamplingDiscreteDistilled, LCM):
            pass
        config = copy.copy(model.model.model_config)
        config.sampling_settings = {**config.sampling_settings, "beta_schedule": "sqrt_linear",
                                    "linear_start": 0.00085, "linear_end": linear_end}
        return AnimateLCMSampling(config)
    current = model.get_model_object("model_sampling")
    sampling = type(current)(model.model.model_config)
    sampling._register_schedule(given_betas=None, beta_schedule=beta_schedule, timesteps=1000,
                                linear_start=0.00085, linear_end=linear_end)
    return sampling


def load_model(model) -> None:
    """Have ComfyUI's memory management put the model on its device, fully loaded (training reads every weight)."""
    import comfy.model_management
    comfy.model_management.load_models_gpu([model], force_full_load=True)
