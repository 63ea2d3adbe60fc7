// "Convert AnimateDiff-Evolved nodes to motion_core": the open graph converted by the server (POST
// /motion_core/migrate: the code `python -m motion_core migrate` runs), put back in place as one step the editor's
// undo takes back, and the report shown. In the canvas menu and the command list (command palette, keybindings,
// Extensions menu); offered once when a loaded workflow has AnimateDiff-Evolved or ArtVentureX nodes that are not
// installed. Group nodes (deprecated) holding them are turned into plain nodes first, where this front end can.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { mayConvert, missingTypes, reportText } from "./lib/migrate.js";

const COMMAND = "motion_core.convertAnimateDiffEvolved";
const LABEL = "Convert AnimateDiff-Evolved nodes to motion_core";
const offered = new Set();

async function post(workflow, check = false) {
  const response = await api.fetchApi("/motion_core/migrate", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ workflow, check }) });
  return { ok: response.ok, body: await response.json() };
}

/** Group nodes whose definition holds AnimateDiff nodes become plain nodes (the editor's own Convert to nodes). */
function expandGroupNodes() {
  const groups = app.graph.extra?.groupNodes ?? {};
  for (const node of [...(app.graph._nodes ?? app.graph.nodes ?? [])]) {
    const name = String(node.type ?? "").replace(/^workflow[>/]/, "");
    const inner = groups[name]?.nodes?.map((n) => n.type) ?? [];
    if (name !== node.type && mayConvert(inner) && typeof node.convertToNodes === "function") node.convertToNodes();
  }
}

function showReport(lines) {
  document.getElementById("mc-migrate-report")?.remove();
  const box = document.createElement("div");
  box.id = "mc-migrate-report";
  box.style.cssText = "position:fixed;right:16px;bottom:16px;z-index:10000;max-width:720px;max-height:60vh;" +
    "overflow:auto;background:#222;color:#ddd;border:1px solid #555;border-radius:6px;padding:10px 12px;" +
    "font:12px/1.45 monospace;white-space:pre-wrap;box-shadow:0 4px 16px #0008;";
  const close = document.createElement("button");
  close.textContent = "Close";
  close.style.cssText = "float:right;margin-left:12px;";
  close.onclick = () => box.remove();
  const text = document.createElement("div");
  text.className = "mc-migrate-lines";
  text.textContent = lines.join("\n");
  box.append(close, text);
  document.body.append(box);
  return box;
}

export async function convertGraph() {
  expandGroupNodes();
  const { ok, body } = await post(app.graph.serialize());
  if (ok && body.changed) {
    const tracker = app.extensionManager?.workflow?.activeWorkflow?.changeTracker;
    tracker?.checkState?.(); // the graph as it was is the undo step
    app.graph.configure(body.workflow);
    app.graph.setDirtyCanvas?.(true, true);
    await new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done))); // drawn: nodes sized
    tracker?.checkState?.();
  }
  const lines = reportText(ok ? body : { error: body.error ?? `HTTP error` });
  app.extensionManager?.toast?.add?.({ severity: ok ? "info" : "error", summary: "motion_core", detail: lines[0],
                                       life: 6000 });
  showReport(lines);
  return body;
}

function offer(count) {
  document.getElementById("mc-migrate-offer")?.remove();
  const box = showReport([`This workflow uses ${count} AnimateDiff-Evolved / ArtVentureX node(s) that are not ` +
                          "installed. motion_core can convert them to its own nodes (undo takes it back)."]);
  box.id = "mc-migrate-offer";
  const go = document.createElement("button");
  go.textContent = "Convert";
  go.style.cssText = "margin-top:8px;";
  go.onclick = () => { box.remove(); convertGraph().catch((e) => console.warn("motion_core: convert", e)); };
  box.append(go);
}

app.registerExtension({
  name: "motion_core.convert",
  commands: [{ id: COMMAND, label: LABEL, icon: "pi pi-sync", function: () => convertGraph() }],
  menuCommands: [{ path: ["Extensions", "motion_core"], commands: [COMMAND] }],
  setup() {
    const canvas = globalThis.LGraphCanvas;
    const original = canvas?.prototype?.getCanvasMenuOptions;
    if (typeof original !== "function") return;
    canvas.prototype.getCanvasMenuOptions = function (...args) {
      const options = original.apply(this, args) ?? [];
      options.push(null, { content: LABEL, callback: () => convertGraph().catch((e) => console.warn("motion_core", e)) });
      return options;
    };
  },
  async afterConfigureGraph(missing) {
    const types = missingTypes(missing);
    const key = JSON.stringify(types.sort()); // once per session for these missing nodes (an undo reloads them)
    if (!mayConvert(types) || offered.has(key)) return;
    offered.add(key);
    const { ok, body } = await post(app.graph.serialize(), true);
    if (ok && body.changed) offer(body.report.converted);
  },
});
