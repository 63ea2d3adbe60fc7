"""What will go wrong, in words, before it does: the messages the graph shows as warnings and the runtime raises as
errors are the same sentences, made here. Pure functions over plain values."""

from __future__ import annotations

FAMILY_NAMES = {"sd15": "SD1.5", "sdxl": "SDXL"}


def family_mismatch(module_family: str, model_family: str) -> str | None:
    """None when they match; else the sentence naming both families and the fix."""
    if module_family == model_family:
        return None
    m, h = (FAMILY_NAMES.get(f, f) for f in (module_family, model_family))
    return (f"this is an {m} motion module but the model is {h}: use a motion module made for {h} "
            f"(or an {m} model)")


def too_many_frames(frames: int, pe_length: int) -> str | None:
    """None when `frames` fit the module's position encoding; else the sentence naming the fix."""
    if frames <= pe_length:
        return None
    return (f"this motion module holds {pe_length} frames; got {frames}: sample longer clips through context "
            f"windows of at most {pe_length} frames (context_length 16 is the usual)")


MIN_FRAMES = 8  # below this, users report washed-out, noisy clips (the modules were trained on 16 frames)


def too_few_frames(frames: int, what: str = "window") -> str | None:
    """None for `frames` >= MIN_FRAMES; else the sentence naming the fix (`what`: "clip" or "window")."""
    if frames >= MIN_FRAMES:
        return None
    return (f"the {what} has {frames} frames: below {MIN_FRAMES} frames AnimateDiff's motion washes out into noise "
            f"(its modules were trained on 16-frame clips): use {MIN_FRAMES} to 32 frames per window, 16 is the usual")


def graph_warnings(*, frames: int | None, context_length: int | None, module: dict | None,
                   model_family: str | None) -> list[str]:
    """Warnings for a Sample Frames or Context Options setup: `module` is describe()'s dict of the connected
    motion module (or None), `model_family` the connected checkpoint's family (or None when unknown), frames None
    when unknown (a connected latent, or Context Options), context_length 0 or None for no windows."""
    out = []
    if module is not None and model_family is not None:
        out.append(family_mismatch(module["family"], model_family))
    windowed = bool(context_length) and (frames is None or context_length < frames)
    window = context_length if windowed else frames
    if module is not None and window is not None:
        out.append(too_many_frames(window, module["pe_length"]))
    if window is not None:
        out.append(too_few_frames(window, "window" if windowed else "clip"))
    return [w for w in out if w]
