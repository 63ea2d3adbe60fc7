import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { gifComment, gifWorkflow } from "../lib/gif.js";

const file = new Uint8Array(readFileSync(new URL("./workflow.gif", import.meta.url)));  // written by motion_core.media

test("the workflow comes back from a GIF Save Animation wrote", () => {
  assert.deepEqual(gifWorkflow(file), { nodes: [{ id: 1, type: "MC_SaveAnimation" }], links: [] });
  assert.deepEqual(JSON.parse(gifComment(file)).prompt, { 1: {} });
});

test("not a GIF, a truncated GIF, a GIF without a comment: null, never a throw", () => {
  assert.equal(gifComment(new TextEncoder().encode("PNG fake")), null);
  const comment = file.indexOf(0xfe, 13) - 1;  // where the comment extension starts
  for (const n of [0, 5, 13, comment, comment + 20]) assert.equal(gifWorkflow(file.subarray(0, n)), null, `cut at ${n}`);
  for (let n = 0; n <= file.length; n++) gifComment(file.subarray(0, n));  // any cut: no throw
  const bare = new Uint8Array([...new TextEncoder().encode("GIF89a"), 1, 0, 1, 0, 0, 0, 0, 0x2c, 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 2, 0x4c, 0x01, 0, 0x3b]);
  assert.equal(gifComment(bare), null);
  const junk = file.slice();
  junk[file.indexOf(0x21, 13)] = 0x99;  // the first extension's introducer damaged
  assert.equal(gifWorkflow(junk), null);
});
