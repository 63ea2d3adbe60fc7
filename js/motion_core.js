// motion_core web extension: a live context-window diagram on Sample Frames, guard-rail warnings on Sample Frames,
// Inject into Model and Context Options, and a frame count / rate caption under Save Animation's preview (the preview itself is
// ComfyUI's own: WebP and MP4 play in the node and in the queue history). Only app.registerExtension and the node
// callbacks it documents are used; every element is styled inline (no global CSS).
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { gifWorkflow } from "./lib/gif.js";
import { checkQuery, widgetValue, windowsQuery } from "./lib/graph.js";
import { drawWindows } from "./lib/svg.js";
import { layoutWindows, summary } from "./lib/windows_view.js";

const WATCHED = ["frames", "context_length", "context_overlap", "context_schedule", "closed_loop"];

function debounce(fn, ms = 150) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

async function getJson(route) {
  const response = await api.fetchApi(route);
  const body = await response.json();
  return { ok: response.ok, body };
}

function panel() {
  const root = document.createElement("div");
  root.style.cssText = "display:flex;flex-direction:column;gap:3px;padding:2px 4px;font:11px sans-serif;color:#bbb;";
  return root;
}

function warningBox() {
  const box = document.createElement("div");
  box.className = "mc-warning";
  box.style.cssText = "display:none;color:#1a1a1a;background:#f0b429;border-radius:3px;padding:3px 5px;white-space:normal;";
  return box;
}

function chain(proto, name, fn) {
  const original = proto[name];
  proto[name] = function (...args) {
    const result = original?.apply(this, args);
    fn.apply(this, args);
    return result;
  };
}

function watchWidgets(node, names, onChange) {
  for (const w of node.widgets ?? []) {
    if (!names.includes(w.name)) continue;
    const original = w.callback;
    w.callback = function (...args) {
      const r = original?.apply(this, args);
      onChange();
      return r;
    };
  }
}

async function refreshWarnings(node) {
  const { ok, body } = await getJson(`/motion_core/check?${checkQuery(node)}`);
  node.mcWarnings = ok ? body.warnings : [body.error];
  const box = node.mcWarningBox;
  box.textContent = node.mcWarnings.map((w) => `⚠ ${w}`).join("\n");
  box.style.display = node.mcWarnings.length ? "block" : "none";
  node.setDirtyCanvas?.(true, true);
}

async function refreshWindows(node) {
  const { ok, body } = await getJson(`/motion_core/windows?${windowsQuery(node)}`);
  if (!ok) {
    node.mcWindows = null;
    node.mcCaption.textContent = body.error;
    node.mcSvg.replaceChildren();
    return;
  }
  node.mcWindows = body.windows;
  drawWindows(node.mcSvg, layoutWindows(body.windows, body.frames, { width: 300 }));
  node.mcCaption.textContent = summary(body);
}

function addSampleFramesView(nodeType) {
  chain(nodeType.prototype, "onNodeCreated", function () {
    const root = panel();
    this.mcSvg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    this.mcSvg.setAttribute("class", "mc-windows");
    this.mcCaption = document.createElement("div");
    this.mcCaption.className = "mc-caption";
    this.mcWarningBox = warningBox();
    root.append(this.mcWarningBox, this.mcSvg, this.mcCaption);
    const widget = this.addDOMWidget("context_windows", "mc-windows", root, { serialize: false, hideOnZoom: false });
    widget.computeSize = (width) => [width, Math.min(40 + 11 * (this.mcWindows?.length ?? 1), 260)];
    const refresh = debounce(() => {
      refreshWindows(this).catch((e) => console.warn("motion_core: windows", e));
      refreshWarnings(this).catch((e) => console.warn("motion_core: check", e));
    });
    this.mcRefresh = refresh;
    watchWidgets(this, WATCHED, refresh);
    refresh();
  });
  chain(nodeType.prototype, "onConfigure", function () { this.mcRefresh?.(); });
  chain(nodeType.prototype, "onConnectionsChange", function () { this.mcRefresh?.(); });
}

// Inject into Model and Context Options: a warning box (Context Options also re-checks when its window changes).
function addGuard(nodeType) {
  chain(nodeType.prototype, "onNodeCreated", function () {
    const root = panel();
    this.mcWarningBox = warningBox();
    root.append(this.mcWarningBox);
    this.addDOMWidget("warnings", "mc-warnings", root, { serialize: false, hideOnZoom: false });
    this.mcRefresh = debounce(() => refreshWarnings(this).catch((e) => console.warn("motion_core: check", e)));
    watchWidgets(this, ["context_length"], this.mcRefresh);
    this.mcRefresh();
  });
  chain(nodeType.prototype, "onConfigure", function () { this.mcRefresh?.(); });
  // connection changes: refreshAll (registered for this node type below) refreshes this node and those downstream
}

// ComfyUI previews a WebP as an animated image and an MP4 as a <video> (with controls, paused): start the video,
// muted and looping, so it plays like the WebP. A GIF it also hands to a <video>, which cannot play it: show the GIF
// in an <img> of our own instead (browsers animate GIFs there by themselves).
function playPreview(node, format, entry) {
  if (node.mcGif) node.mcGif.style.display = format === "GIF" ? "block" : "none";
  if (format === "GIF") {
    if (!node.mcGif) {
      node.mcGif = document.createElement("img");
      node.mcGif.className = "mc-gif-preview";
      node.mcGif.style.cssText = "width:100%;height:100%;object-fit:contain;";
      node.addDOMWidget("gif_preview", "mc-gif", node.mcGif, { serialize: false, hideOnZoom: false });
    }
    node.mcGif.src = api.apiURL(`/view?${new URLSearchParams(entry)}`);
    return;
  }
  if (format !== "MP4") return;
  let tries = 0;
  const start = setInterval(() => {
    const video = node.videoContainer?.querySelector?.("video");
    if (video || ++tries > 50) clearInterval(start);
    if (!video) return;
    video.muted = true;
    video.loop = true;
    video.play().catch(() => {});  // a browser that refuses autoplay keeps the play button
  }, 100);
}

function addSaveCaption(nodeType) {
  chain(nodeType.prototype, "onExecuted", function (message) {
    const frames = message?.frames?.[0];
    const rate = message?.frame_rate?.[0];
    const file = message?.images?.[0]?.filename ?? "";
    if (!this.mcCaption) {
      this.mcCaption = document.createElement("div");
      this.mcCaption.className = "mc-caption";
      this.mcCaption.style.cssText = "font:11px sans-serif;color:#bbb;padding:2px 4px;";
      this.addDOMWidget("animation_info", "mc-caption", this.mcCaption, { serialize: false, hideOnZoom: false });
    }
    const format = file.split(".").pop().toUpperCase();
    this.mcCaption.textContent = `${frames} frames · ${rate} fps · ${format}`;
    this.mcAnimation = { frames, frame_rate: rate, filename: file };
    playPreview(this, format, message?.images?.[0] ?? {});
  });
}

// Graph edits upstream (a new motion module file, another checkpoint) change what Sample Frames should warn about.
const refreshAll = debounce(() => {
  for (const node of app.graph?._nodes ?? []) node.mcRefresh?.();
}, 250);

// ComfyUI's front end reads workflows from dropped PNG, WebP, ... but not GIF. Save Animation writes the workflow
// into the GIF's comment: a GIF dropped on the canvas (not onto a node: Load Image keeps those) loads it.
function onDrop(event) {
  const file = event.dataTransfer?.files?.[0];
  if (!file || !(file.type === "image/gif" || /\.gif$/i.test(file.name))) return;
  const pos = app.canvas?.convertEventToCanvasOffset?.(event);
  if (pos && app.graph?.getNodeOnPos?.(pos[0], pos[1])) return;
  event.preventDefault();
  event.stopImmediatePropagation();
  file.arrayBuffer().then((buffer) => {
    const workflow = gifWorkflow(new Uint8Array(buffer));
    if (workflow) return app.loadGraphData(workflow, true, true, file.name.replace(/\.gif$/i, ""));
    app.extensionManager?.toast?.add?.({ severity: "warn", summary: "motion_core",
                                         detail: `${file.name} holds no workflow`, life: 5000 });
  }).catch((e) => console.warn("motion_core: reading a dropped GIF", e));
}

app.registerExtension({
  name: "motion_core.ui",
  setup() {
    window.addEventListener("drop", onDrop, { capture: true });
  },
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.name === "MC_SampleFrames") addSampleFramesView(nodeType);
    if (["MC_InjectMotionModule", "MC_ContextOptions"].includes(nodeData.name)) addGuard(nodeType);
    if (nodeData.name === "MC_SaveAnimation") addSaveCaption(nodeType);
    if (["MC_LoadMotionModule", "MC_ApplyMotionLoRA", "MC_InjectMotionModule", "MC_ContextOptions"].includes(nodeData.name)) {
      chain(nodeType.prototype, "onNodeCreated", function () {
        watchWidgets(this, ["model_name"], refreshAll);
      });
      chain(nodeType.prototype, "onConnectionsChange", refreshAll);
    }
  },
  nodeCreated(node) {
    if (widgetValue(node, "ckpt_name") !== undefined || widgetValue(node, "unet_name") !== undefined) {
      watchWidgets(node, ["ckpt_name", "unet_name"], refreshAll);
    }
  },
});
