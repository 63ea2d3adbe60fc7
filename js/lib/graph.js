// Walking a ComfyUI graph upstream from a node, through LiteGraph's stable node API only
// (findInputSlot, getInputNode, widgets). Pure: the unit tests hand it plain objects.

export function widgetValue(node, name) {
  return node?.widgets?.find((w) => w.name === name)?.value;
}

/** The node feeding `node`'s input called `name`, or null. */
export function inputNode(node, name) {
  const slot = node?.findInputSlot?.(name);
  if (slot === undefined || slot === null || slot < 0) return null;
  return node.getInputNode(slot) ?? null;
}

/** Follow input `name` upstream (through pass-through nodes that have the same input) until `accept(node)`. */
export function upstream(node, name, accept, limit = 32) {
  let current = inputNode(node, name);
  for (let i = 0; current && i < limit; i++) {
    if (accept(current)) return current;
    current = inputNode(current, name);
  }
  return null;
}

/** The model file a MODEL input comes from: {checkpoint, loader} or null. */
export function modelSource(node, input = "model") {
  const loader = upstream(node, input, (n) => widgetValue(n, "ckpt_name") !== undefined || widgetValue(n, "unet_name") !== undefined);
  if (!loader) return null;
  const ckpt = widgetValue(loader, "ckpt_name");
  return ckpt !== undefined ? { checkpoint: ckpt, loader: "checkpoints" } : { checkpoint: widgetValue(loader, "unet_name"), loader: "diffusion_models" };
}

/** What a Sample Frames / Inject into Model node is wired to: {motion_module, checkpoint, loader} (each may be missing). */
export function motionSetup(node) {
  const inject = node.type === "MC_InjectMotionModule" ? node : upstream(node, "model", (n) => n.type === "MC_InjectMotionModule");
  if (!inject) return {};
  const loader = upstream(inject, "motion_module", (n) => n.type === "MC_LoadMotionModule");
  const setup = {};
  const name = loader && widgetValue(loader, "model_name");
  if (name) setup.motion_module = name;
  const source = modelSource(inject);
  if (source?.checkpoint) Object.assign(setup, source);
  return setup;
}

/** Query string for /motion_core/check from a node's setup and widgets. */
export function checkQuery(node) {
  const q = new URLSearchParams(motionSetup(node));
  if (node.type === "MC_SampleFrames") {
    const latent = inputNode(node, "latent");
    if (!latent) q.set("frames", String(widgetValue(node, "frames")));
    q.set("context_length", String(widgetValue(node, "context_length")));
  }
  if (node.type === "MC_ContextOptions") q.set("context_length", String(widgetValue(node, "context_length")));
  return q.toString();
}

/** Query string for /motion_core/windows from Sample Frames' widgets. */
export function windowsQuery(node, step = 0) {
  const q = new URLSearchParams({
    frames: String(widgetValue(node, "frames")),
    length: String(widgetValue(node, "context_length")),
    overlap: String(widgetValue(node, "context_overlap")),
    schedule: String(widgetValue(node, "context_schedule")),
    closed_loop: String(!!widgetValue(node, "closed_loop")),
    step: String(step),
  });
  return q.toString();
}
