import assert from "node:assert/strict";
import { test } from "node:test";
import { coverage, layoutWindows, runs, summary } from "../lib/windows_view.js";

test("runs split a window into consecutive stretches (wrapped and strided windows too)", () => {
  assert.deepEqual(runs([0, 1, 2, 3]), [[0, 3]]);
  assert.deepEqual(runs([46, 47, 0, 1]), [[46, 47], [0, 1]]);
  assert.deepEqual(runs([0, 2, 4]), [[0, 0], [2, 2], [4, 4]]);
});

test("48 frames, windows of 16 overlapping by 4: four rows, overlaps shaded where two windows share frames", () => {
  const windows = [[...Array(16).keys()], [...Array(16).keys()].map((i) => i + 12),
                   [...Array(16).keys()].map((i) => i + 24), [...Array(16).keys()].map((i) => i + 32)];
  const layout = layoutWindows(windows, 48, { width: 484, rowHeight: 8, gap: 2, pad: 2 });
  assert.equal(layout.rows.length, 4);
  assert.equal(layout.height, 2 * 2 + 4 * 10 - 2);
  const [first, second] = layout.rows;
  assert.deepEqual(first.cells, [{ x: 2, w: 160, start: 0, end: 15 }]);  // 10 px per frame
  assert.deepEqual(first.overlaps, [{ x: 122, w: 40, start: 12, end: 15 }]);
  assert.deepEqual(second.overlaps.map((o) => [o.start, o.end]), [[12, 15], [24, 27]]);
  assert.equal(second.y, 12);
  assert.deepEqual(layout.uncovered, []);
  assert.equal(first.label, "0-15");
});

test("frames no window holds are reported, and coverage counts each window once per frame", () => {
  assert.deepEqual(coverage([[0, 1], [1, 2]], 4), [1, 2, 1, 0]);
  assert.deepEqual(layoutWindows([[0, 1], [1, 2]], 4).uncovered, [3]);
});

test("bad frame counts are refused", () => {
  assert.throws(() => layoutWindows([], 0), RangeError);
  assert.throws(() => layoutWindows([], 2.5), RangeError);
});

test("summary says what the diagram shows", () => {
  assert.equal(summary({ frames: 48, length: 16, overlap: 4, windows: [[], [], [], []], per_step: false }),
               "48 frames · 4 windows of 16 · overlap 4");
  assert.equal(summary({ frames: 12, length: 16, overlap: 4, windows: [[]] }), "12 frames · one pass (no context windows)");
  assert.match(summary({ frames: 40, length: 16, overlap: 4, windows: [[], []], per_step: true }), /shift every step/);
});
