import assert from "node:assert/strict";
import { test } from "node:test";
import { checkQuery, motionSetup, upstream, windowsQuery } from "../lib/graph.js";

/** A LiteGraph-like node: inputs by name, widgets by name, links to other fake nodes. */
function node(type, widgets = {}, inputs = {}) {
  const names = Object.keys(inputs);
  return {
    type,
    widgets: Object.entries(widgets).map(([name, value]) => ({ name, value })),
    findInputSlot: (name) => names.indexOf(name),
    getInputNode: (slot) => inputs[names[slot]] ?? null,
  };
}

test("Sample Frames finds the motion module and checkpoint through LoRA loaders", () => {
  const ckpt = node("CheckpointLoaderSimple", { ckpt_name: "v1-5-pruned-emaonly.safetensors" });
  const lora = node("LoraLoader", { lora_name: "x" }, { model: ckpt });
  const mm = node("MC_LoadMotionModule", { model_name: "mm_sd_v15_v2.ckpt" });
  const mlora = node("MC_ApplyMotionLoRA", { lora_name: "zoom" }, { motion_module: mm });
  const inject = node("MC_InjectMotionModule", {}, { model: lora, motion_module: mlora });
  const sample = node("MC_SampleFrames", { frames: 48, context_length: 0, context_overlap: 4,
                                           context_schedule: "static", closed_loop: false }, { model: inject, latent: null });
  assert.deepEqual(motionSetup(sample), { motion_module: "mm_sd_v15_v2.ckpt",
                                          checkpoint: "v1-5-pruned-emaonly.safetensors", loader: "checkpoints" });
  assert.equal(checkQuery(sample), "motion_module=mm_sd_v15_v2.ckpt&checkpoint=v1-5-pruned-emaonly.safetensors"
                                   + "&loader=checkpoints&frames=48&context_length=0");
  assert.equal(windowsQuery(sample, 2), "frames=48&length=0&overlap=4&schedule=static&closed_loop=false&step=2");
});

test("a connected latent decides the frame count, so none is sent; a UNET loader is a diffusion model", () => {
  const unet = node("UNETLoader", { unet_name: "sdxl.safetensors" });
  const inject = node("MC_InjectMotionModule", {}, { model: unet, motion_module: null });
  const sample = node("MC_SampleFrames", { frames: 48, context_length: 16 }, { model: inject, latent: node("VAEEncode") });
  assert.equal(checkQuery(sample), "checkpoint=sdxl.safetensors&loader=diffusion_models&context_length=16");
  assert.deepEqual(motionSetup(inject), { checkpoint: "sdxl.safetensors", loader: "diffusion_models" });
});

test("Context Options checks its window against the module upstream; Sample Frames finds it through it", () => {
  const ckpt = node("CheckpointLoaderSimple", { ckpt_name: "v1-5-pruned-emaonly.safetensors" });
  const mm = node("MC_LoadMotionModule", { model_name: "mm_sd_v15_v2.ckpt" });
  const inject = node("MC_InjectMotionModule", {}, { model: ckpt, motion_module: mm });
  const options = node("MC_ContextOptions", { context_length: 6 }, { model: inject });
  assert.equal(checkQuery(options), "motion_module=mm_sd_v15_v2.ckpt&checkpoint=v1-5-pruned-emaonly.safetensors"
                                    + "&loader=checkpoints&context_length=6");
  const sample = node("MC_SampleFrames", { frames: 48, context_length: 16 }, { model: options, latent: null });
  assert.equal(motionSetup(sample).motion_module, "mm_sd_v15_v2.ckpt");
});

test("nothing wired: empty setup; upstream stops at missing links and loops", () => {
  assert.deepEqual(motionSetup(node("MC_SampleFrames", { frames: 16 }, { model: null })), {});
  const a = node("A", {}, { model: null });
  const b = node("B", {}, { model: a });
  a.getInputNode = () => b;  // a cycle
  assert.equal(upstream(b, "model", () => false), null);
});
