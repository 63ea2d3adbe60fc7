// Pure helpers of the Convert command (js/convert.js): which missing node types to offer a conversion for, and the
// report the server sends, as the lines a panel shows. The unit tests hand them plain objects.

/** Type names from the front end's missing-node list (strings, or {type, hint} objects). */
export function missingTypes(missing) {
  const names = (missing ?? []).map((m) => (typeof m === "string" ? m : m?.type)).filter((t) => typeof t === "string");
  return [...new Set(names)];
}

/** Whether a missing node type may be one the converter knows: AnimateDiff-Evolved's (ADE_...) or ArtVentureX's
 * (AnimateDiff...), inside a group node or not. The server decides what converts; this only avoids asking it for
 * workflows that miss other packs' nodes. */
export function mayConvert(types) {
  return types.some((t) => /^(ADE_|AnimateDiff)/.test(t.replace(/^workflow[>/]/, "")) || t === "CheckpointLoaderSimpleWithNoiseSelect");
}

/** The report's lines under a one-line summary. */
export function reportText(body) {
  if (body?.error) return [`motion_core: ${body.error}`];
  const r = body?.report ?? {};
  const head = body?.changed
    ? `Converted ${r.converted} AnimateDiff node(s) to motion_core` +
      (r.approximate ? `, ${r.approximate} setting(s) approximate` : "") + (r.left ? `, ${r.left} left as they were` : "") +
      ". Undo (Ctrl+Z) takes the graph back."
    : "No AnimateDiff-Evolved or ArtVentureX AnimateDiff nodes to convert.";
  return [head, ...(body?.changed || r.left ? body.lines ?? [] : [])];
}
