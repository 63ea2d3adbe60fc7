"""A diffusers SD1.5 folder as a single-file checkpoint in the original (ldm / CompVis) layout, the way
`v1-5-pruned-emaonly.safetensors` stores it: `model.diffusion_model.*`, `first_stage_model.*`,
`cond_stage_model.transformer.text_model.*`. The key maps are the inverse of diffusers' single-file conversion."""

from __future__ import annotations


def _unet_map(levels: int = 4, layers: int = 2) -> list[tuple[str, str]]:
    """(ldm prefix, diffusers prefix) pairs, most specific first."""
    pairs = [("time_embed.0.", "time_embedding.linear_1."), ("time_embed.2.", "time_embedding.linear_2."),
             ("input_blocks.0.0.", "conv_in."), ("out.0.", "conv_norm_out."), ("out.2.", "conv_out."),
             ("middle_block.1.", "mid_block.attentions.0.")]
    for j in range(2):
        pairs.append((f"middle_block.{2 * j}.", f"mid_block.resnets.{j}."))
    for i in range(levels):
        for j in range(layers):
            pairs.append((f"input_blocks.{3 * i + j + 1}.0.", f"down_blocks.{i}.resnets.{j}."))
            if i < levels - 1:
                pairs.append((f"input_blocks.{3 * i + j + 1}.1.", f"down_blocks.{i}.attentions.{j}."))
        for j in range(layers + 1):
            pairs.append((f"output_blocks.{3 * i + j}.0.", f"up_blocks.{i}.resnets.{j}."))
            if i > 0:
                pairs.append((f"output_blocks.{3 * i + j}.1.", f"up_blocks.{i}.attentions.{j}."))
        if i < levels - 1:
            pairs.append((f"input_blocks.{3 * (i + 1)}.0.op.", f"down_blocks.{i}.downsamplers.0.conv."))
            pairs.append((f"output_blocks.{3 * i + 2}.{1 if i == 0 else 2}.", f"up_blocks.{i}.upsamplers.0."))
    return pairs


RESNET = [("in_layers.0.", "norm1."), ("in_layers.2.", "conv1."), ("out_layers.0.", "norm2."),
          ("out_layers.3.", "conv2."), ("emb_layers.1.", "time_emb_proj."), ("skip_connection.", "conv_shortcut.")]


def unet_to_ldm(sd: dict) -> dict:
    pairs = _unet_map()
    out = {}
    for key, value in sd.items():
        new = key
        for ldm, hf in pairs:
            if new.startswith(hf):
                new = ldm + new[len(hf):]
                break
        if ".resnets." in key:
            for ldm, hf in RESNET:
                new = new.replace(hf, ldm)
        out["model.diffusion_model." + new] = value
    return out


def vae_to_ldm(sd: dict, levels: int = 4, layers: int = 1) -> dict:
    pairs = [("nin_shortcut.", "conv_shortcut."), ("norm_out.", "conv_norm_out."), ("mid.attn_1.", "mid_block.attentions.0.")]
    for i in range(levels):
        for j in range(layers):
            pairs.append((f"encoder.down.{i}.block.{j}.", f"encoder.down_blocks.{i}.resnets.{j}."))
        if i < levels - 1:
            pairs.append((f"down.{i}.downsample.", f"down_blocks.{i}.downsamplers.0."))
            pairs.append((f"up.{levels - 1 - i}.upsample.", f"up_blocks.{i}.upsamplers.0."))
        for j in range(layers + 1):
            pairs.append((f"decoder.up.{levels - 1 - i}.block.{j}.", f"decoder.up_blocks.{i}.resnets.{j}."))
    for i in range(2):
        pairs.append((f"mid.block_{i + 1}.", f"mid_block.resnets.{i}."))
    attention = [("norm.", "group_norm."), ("q.", "to_q."), ("k.", "to_k."), ("v.", "to_v."), ("proj_out.", "to_out.0.")]
    out = {}
    for key, value in sd.items():
        new = key
        for ldm, hf in pairs:
            new = new.replace(hf, ldm)
        if "attn_1." in new:
            for ldm, hf in attention:
                new = new.replace(hf, ldm)
            if value.ndim == 2:
                value = value[:, :, None, None]  # ldm's attention projections are 1x1 convolutions
        out["first_stage_model." + new] = value
    return out


def text_to_ldm(sd: dict) -> dict:
    return {"cond_stage_model.transformer." + (k if k.startswith("text_model.") else "text_model." + k): v
            for k, v in sd.items()}


def write_ldm_checkpoint(base, path) -> None:
    from safetensors.torch import save_file
    sd = unet_to_ldm(base.unet.state_dict())
    sd |= vae_to_ldm(base.vae.state_dict())
    sd |= text_to_ldm(base.text_encoder.state_dict())
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
