// Context-window diagram: pure layout from the windows the server computes (/motion_core/windows).
// One row per window; each row holds the runs of consecutive frames the window covers, and the frames it shares
// with another window ("overlap", drawn shaded). No DOM here: svg.js turns the layout into elements.

/** Runs of consecutive frames in `frames` (in the window's order): [[start, end], ...], end inclusive. */
export function runs(frames) {
  const out = [];
  for (const f of frames) {
    const last = out[out.length - 1];
    if (last && f === last[1] + 1) last[1] = f;
    else out.push([f, f]);
  }
  return out;
}

/** How many windows hold each frame. */
export function coverage(windows, frames) {
  const count = new Array(frames).fill(0);
  for (const w of windows) for (const f of new Set(w)) count[f] += 1;
  return count;
}

/**
 * Layout of the diagram: {width, height, rows: [{y, h, cells: [{x, w}], overlaps: [{x, w}], label}], uncovered}.
 * `width` is the drawing width in pixels; frames share it evenly.
 */
export function layoutWindows(windows, frames, { width = 300, rowHeight = 8, gap = 3, pad = 2 } = {}) {
  if (!Number.isInteger(frames) || frames < 1) throw new RangeError(`frames must be a positive integer, got ${frames}`);
  const unit = (width - 2 * pad) / frames;
  const count = coverage(windows, frames);
  const rows = windows.map((w, i) => {
    const y = pad + i * (rowHeight + gap);
    const cells = runs(w).map(([a, b]) => ({ x: pad + a * unit, w: (b - a + 1) * unit, start: a, end: b }));
    const shared = runs([...new Set(w)].sort((a, b) => a - b).filter((f) => count[f] > 1));
    const overlaps = shared.map(([a, b]) => ({ x: pad + a * unit, w: (b - a + 1) * unit, start: a, end: b }));
    return { y, h: rowHeight, cells, overlaps, label: `${w[0]}-${w[w.length - 1]}` };
  });
  const uncovered = count.flatMap((c, f) => (c === 0 ? [f] : []));
  return { width, height: 2 * pad + windows.length * (rowHeight + gap) - (windows.length ? gap : 0), rows, uncovered };
}

/** One line under the diagram, e.g. "48 frames · 4 windows of 16 · overlap 4". */
export function summary(body) {
  const n = body.windows.length;
  if (n <= 1) return `${body.frames} frames · one pass (no context windows)`;
  const step = body.per_step ? " · windows shift every step" : "";
  return `${body.frames} frames · ${n} windows of ${body.length} · overlap ${body.overlap}${step}`;
}
