import assert from "node:assert/strict";
import { test } from "node:test";
import { mayConvert, missingTypes, reportText } from "../lib/migrate.js";

test("missing node types come as strings or objects, each once", () => {
  assert.deepEqual(missingTypes(["ADE_UseEvolvedSampling", { type: "ADE_UseEvolvedSampling", hint: "x" },
                                 { type: "VHS_VideoCombine" }, null]),
                   ["ADE_UseEvolvedSampling", "VHS_VideoCombine"]);
});

test("only AnimateDiff packs' missing nodes are offered a conversion", () => {
  assert.equal(mayConvert(["ADE_AnimateDiffLoaderWithContext"]), true);
  assert.equal(mayConvert(["AnimateDiffSampler", "VHS_VideoCombine"]), true);
  assert.equal(mayConvert(["workflow>ADE_in_a_group"]), true);
  assert.equal(mayConvert(["VHS_VideoCombine", "IPAdapterAdvanced"]), false);
});

test("the report reads as a summary and its lines", () => {
  const body = { changed: true, report: { converted: 3, approximate: 1, left: 2 }, lines: ["converted (3):", "  #6 ..."] };
  const text = reportText(body);
  assert.match(text[0], /^Converted 3 AnimateDiff node\(s\) to motion_core, 1 setting\(s\) approximate, 2 left/);
  assert.deepEqual(text.slice(1), body.lines);
  assert.deepEqual(reportText({ changed: false, report: { converted: 0, left: 0 }, lines: ["x"] }),
                   ["No AnimateDiff-Evolved or ArtVentureX AnimateDiff nodes to convert."]);
  assert.deepEqual(reportText({ error: "bad" }), ["motion_core: bad"]);
});
