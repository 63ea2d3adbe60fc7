// Drive ComfyUI's front end in Debian's Chromium: add the pack's nodes, check the context-window diagram against the
// route, the guard-rail warnings, queue a shipped workflow and wait for the animated preview. Prints one JSON line of
// findings for tests/test_browser.py; screenshots go to OUT.
//   node ui_check.mjs URL OUT WORKFLOW.json
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const [url, out, workflowPath] = process.argv.slice(2);
const workflow = JSON.parse(readFileSync(workflowPath, "utf8"));
const findings = { console_errors: [], http_errors: [], screenshots: [] };
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
                                        args: ["--no-sandbox", "--disable-gpu"] });

// Baseline: ComfyUI's own front end on this server, with the pack's scripts answered by empty modules. Whatever it
// logs then (a fresh profile's 404s, its own settings code) is not ours; the real session may log nothing more.
async function baselineErrors() {
  const page = await browser.newPage();
  const errors = [];
  page.on("console", (m) => { if (m.type() === "error") errors.push(`${m.text()} @ ${m.location()?.url ?? ""}`); });
  page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
  await page.route(/\/extensions\/motion_core\/.*\.js$/, (route) =>
    route.fulfill({ status: 200, contentType: "text/javascript", body: "export {};" }));
  await page.goto(url, { waitUntil: "domcontentloaded" });
  await page.waitForFunction(() => window.app?.graph, null, { timeout: 180_000 });
  await page.waitForTimeout(5000);
  await page.close();
  return errors;
}
findings.baseline_errors = await baselineErrors();
const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
page.on("console", (m) => { if (m.type() === "error") findings.console_errors.push(`${m.text()} @ ${m.location()?.url ?? ""}`); });
page.on("pageerror", (e) => findings.console_errors.push(`pageerror: ${e.message}`));
page.on("response", (r) => { if (r.status() >= 400) findings.http_errors.push(`${r.status()} ${r.url()}`); });
const shot = async (name) => {
  const path = `${out}/${name}.png`;
  await page.screenshot({ path });
  findings.screenshots.push(path);
};

try {
  await page.goto(url, { waitUntil: "domcontentloaded" });
  await page.waitForFunction(() => window.app?.graph && window.LiteGraph?.registered_node_types?.MC_SampleFrames,
                             null, { timeout: 180_000 });
  await page.waitForTimeout(1500);
  findings.extension_loaded = await page.evaluate(() => app.extensions.some((e) => e.name === "motion_core.ui"));

  // A graph by hand: checkpoint + motion module -> Inject -> Sample Frames, frames 48 / context 16 / overlap 4.
  await page.evaluate(() => {
    const g = app.graph;
    g.clear();
    const add = (type, pos) => { const n = LiteGraph.createNode(type); n.pos = pos; g.add(n); return n; };
    const set = (node, name, value) => { const w = node.widgets.find((w) => w.name === name); w.value = value; w.callback?.(value); };
    const ckpt = add("CheckpointLoaderSimple", [40, 60]);
    set(ckpt, "ckpt_name", "v1-5-pruned-emaonly.safetensors");
    const mm = add("MC_LoadMotionModule", [40, 260]);
    set(mm, "model_name", "mm_sd_v15_v2.ckpt");
    const inject = add("MC_InjectMotionModule", [420, 120]);
    ckpt.connect(0, inject, inject.findInputSlot("model"));
    mm.connect(0, inject, inject.findInputSlot("motion_module"));
    const sample = add("MC_SampleFrames", [800, 60]);
    inject.connect(0, sample, sample.findInputSlot("model"));
    window.mcTest = { ckpt, mm, inject, sample, set };
    set(sample, "frames", 48);
    set(sample, "context_length", 16);
    set(sample, "context_overlap", 4);
    app.canvas.ds.offset = [0, 0];
    app.canvas.ds.scale = 1;
    g.setDirtyCanvas(true, true);
  });
  await page.waitForFunction(() => mcTest.sample.mcWindows?.length === 4 &&
                             document.querySelectorAll("svg.mc-windows g[data-window]").length === 4, null, { timeout: 30_000 });
  findings.diagram = await page.evaluate(async () => {
    const route = await (await fetch("/motion_core/windows?frames=48&length=16&overlap=4&schedule=static&closed_loop=false&step=0")).json();
    const rows = [...document.querySelectorAll("svg.mc-windows g[data-window]")].map((g) =>
      [...g.querySelectorAll("rect.mc-cell")].map((r) => [+r.dataset.start, +r.dataset.end]));
    const overlaps = document.querySelectorAll("svg.mc-windows rect.mc-overlap").length;
    const caption = document.querySelector(".mc-caption")?.textContent;
    return { route: route.windows.map((w) => [w[0], w[w.length - 1]]), drawn: rows.map((r) => [r[0][0], r[r.length - 1][1]]),
             overlaps, caption, warnings: mcTest.sample.mcWarnings };
  });
  await shot("1_windows_48_16_4");

  // No context for 48 frames: the module (32 frames) cannot hold them -> a warning in the node.
  await page.evaluate(() => mcTest.set(mcTest.sample, "context_length", 0));
  await page.waitForFunction(() => mcTest.sample.mcWarnings?.length > 0, null, { timeout: 30_000 });
  findings.frames_warning = await page.evaluate(() => ({
    warnings: mcTest.sample.mcWarnings,
    visible: [...document.querySelectorAll(".mc-warning")].some((b) => b.style.display !== "none" && b.offsetParent !== null),
  }));
  await shot("2_warning_48_frames_no_context");

  // An SDXL motion module on an SD1.5 checkpoint -> Inject into Model warns, naming both.
  await page.evaluate(() => mcTest.set(mcTest.mm, "model_name", "tiny_sdxl_test.safetensors"));
  await page.waitForFunction(() => mcTest.inject.mcWarnings?.length > 0, null, { timeout: 30_000 });
  findings.family_warning = await page.evaluate(() => mcTest.inject.mcWarnings);
  await shot("3_warning_wrong_family");

  // A shipped workflow, shrunk to 64x64 px and 2 steps, queued from the UI in each format; Save Animation previews it.
  findings.previews = {};
  for (const format of ["webp", "gif", "mp4"]) {
    await page.evaluate(async ({ wf, format }) => {
      await app.loadGraphData(wf);
      for (const node of app.graph._nodes) {
        for (const w of node.widgets ?? []) {
          if (w.name === "width" || w.name === "height") w.value = 64;
          if (w.name === "steps") w.value = 2;
          if (node.type === "MC_SaveAnimation" && w.name === "format") w.value = format;
        }
      }
      await app.queuePrompt(0, 1);
    }, { wf: workflow, format });
    await page.waitForFunction(() => app.graph._nodes.some((n) => n.type === "MC_SaveAnimation" && n.mcAnimation),
                               null, { timeout: 900_000, polling: 1000 });
    await page.waitForTimeout(3000);
    findings.previews[format] = await page.evaluate(() => {
      const save = app.graph._nodes.find((n) => n.type === "MC_SaveAnimation");
      const file = save.mcAnimation.filename;
      const media = [...document.querySelectorAll("img, video")].filter((m) => (m.currentSrc || m.src || "").includes(file));
      return { animation: save.mcAnimation, caption: save.mcCaption?.textContent,
               media: media.map((m) => ({ tag: m.tagName, loaded: m.tagName === "IMG" ? m.complete && m.naturalWidth > 0 : m.readyState >= 2 })) };
    });
    await shot(`4_preview_${format}`);
    // Does the preview move? Two pictures of the node, 400 ms apart (8 fps: three frames later).
    await page.evaluate(() => {  // the node in view, whatever size the other nodes' inputs give the layout
      app.canvas.centerOnNode(app.graph._nodes.find((n) => n.type === "MC_SaveAnimation"));
      app.canvas.setDirty(true, true);
    });
    await page.waitForTimeout(500);
    const clip = await page.evaluate(() => {
      const save = app.graph._nodes.find((n) => n.type === "MC_SaveAnimation");
      const { offset, scale } = app.canvas.ds;
      const box = app.canvas.canvas.getBoundingClientRect();
      return { x: box.left + (save.pos[0] + offset[0]) * scale, y: box.top + (save.pos[1] + offset[1]) * scale,
               width: save.size[0] * scale, height: save.size[1] * scale };
    });
    const a = await page.screenshot({ clip });
    await page.waitForTimeout(400);
    const b = await page.screenshot({ clip });
    findings.previews[format].moving = !a.equals(b);
  }
  // Sharing: the GIF dropped back onto an empty canvas restores the workflow that made it.
  findings.gif_drop = await page.evaluate(async (name) => {
    const blob = await (await fetch(`/view?filename=${encodeURIComponent(name)}&subfolder=motion_core&type=output`)).blob();
    app.graph.clear();
    const data = new DataTransfer();
    data.items.add(new File([blob], name, { type: "image/gif" }));
    const box = app.canvas.canvas.getBoundingClientRect();
    app.canvas.canvas.dispatchEvent(new DragEvent("drop", { dataTransfer: data, bubbles: true, cancelable: true,
                                                            clientX: box.left + 10, clientY: box.bottom - 10 }));
    for (let i = 0; i < 100 && app.graph._nodes.length === 0; i++) await new Promise((r) => setTimeout(r, 100));
    const save = app.graph._nodes.find((n) => n.type === "MC_SaveAnimation");
    return { types: app.graph._nodes.map((n) => n.type).sort(),
             format: save?.widgets.find((w) => w.name === "format")?.value };
  }, findings.previews.gif.animation.filename);
  await shot("6_gif_dropped_back");

  // The queue's output history shows the same files.
  await page.evaluate(() => document.querySelector("button.queue-tab-button, [aria-label*='Queue' i], .side-bar-button:has(.pi-history)")?.click());
  await page.waitForTimeout(2500);
  findings.history_media = await page.evaluate(() => [...document.querySelectorAll("img, video")]
    .filter((m) => /anim_\d+_\.(webp|gif|mp4)/.test(m.currentSrc || m.src || "")).map((m) => (m.currentSrc || m.src).split("filename=")[1]?.split("&")[0]));
  await shot("5_queue_history");
} catch (e) {
  findings.failure = String(e?.stack || e);
  try { await shot("failure"); } catch {}
} finally {
  await browser.close();
  console.log(JSON.stringify(findings));
}
