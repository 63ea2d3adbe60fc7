// The editor's "Convert AnimateDiff-Evolved nodes to motion_core" in Debian's Chromium: load an AnimateDiff-Evolved
// workflow (its nodes are not installed: red), see the one-time offer, run the command from the command list and
// from the canvas menu, check the graph and the report, then undo with Ctrl+Z. Prints one JSON line of findings for
// tests/test_browser.py; screenshots go to OUT.
//   node convert_check.mjs URL OUT WORKFLOW.json
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const [url, out, workflowPath] = process.argv.slice(2);
const workflow = JSON.parse(readFileSync(workflowPath, "utf8"));
const findings = { console_errors: [], screenshots: [] };
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
                                        args: ["--no-sandbox", "--disable-gpu"] });
const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
page.on("console", (m) => { if (m.type() === "error") findings.console_errors.push(m.text()); });
page.on("pageerror", (e) => findings.console_errors.push(`pageerror: ${e.message}`));
const shot = async (name) => {
  const path = `${out}/${name}.png`;
  await page.screenshot({ path });
  findings.screenshots.push(path);
};
const types = () => page.evaluate(() => app.graph._nodes.map((n) => n.type).sort());

try {
  await page.goto(url, { waitUntil: "domcontentloaded" });
  await page.waitForFunction(() => window.app?.graph && window.LiteGraph?.registered_node_types?.MC_SampleFrames,
                             null, { timeout: 180_000 });
  await page.waitForTimeout(1500);
  findings.extension_loaded = await page.evaluate(() => app.extensions.some((e) => e.name === "motion_core.convert"));
  findings.command_registered = await page.evaluate(() =>
    (app.extensionManager?.command?.commands ?? []).some((c) => c.id === "motion_core.convertAnimateDiffEvolved"));

  await page.evaluate(async (wf) => { await app.loadGraphData(wf); }, workflow);
  await page.waitForSelector("#mc-migrate-offer", { timeout: 30_000 });
  findings.offer = await page.textContent("#mc-migrate-offer .mc-migrate-lines");
  findings.before = await types();
  await shot("convert_1_offer");
  await page.keyboard.press("Escape"); // ComfyUI's own missing-nodes dialog
  await page.evaluate(() => document.getElementById("mc-migrate-offer")?.remove());

  // from the command list (what the command palette, keybindings and the Extensions menu run)
  findings.command_result = await page.evaluate(async () => {
    const body = await app.extensionManager.command.execute("motion_core.convertAnimateDiffEvolved");
    return body === undefined ? "ran" : body;
  });
  await page.waitForSelector("#mc-migrate-report", { timeout: 30_000 });
  findings.report = await page.textContent("#mc-migrate-report .mc-migrate-lines");
  findings.after = await types();
  await shot("convert_2_converted");

  // undo: Ctrl+Z on the canvas takes the graph back as it was (ComfyUI's own dialogs closed first: a fresh
  // profile opens the template browser)
  await page.evaluate(() => document.getElementById("mc-migrate-report")?.remove());
  for (let i = 0; i < 3; i++) {
    await page.evaluate(() => document.querySelectorAll(".p-dialog-close-button, .p-dialog-header-close")
      .forEach((b) => b.click()));
    await page.waitForTimeout(300);
  }
  await page.mouse.click(600, 900); // empty canvas
  await page.keyboard.press("Control+z");
  await page.waitForFunction((before) => JSON.stringify(app.graph._nodes.map((n) => n.type).sort()) ===
                             JSON.stringify(before), findings.before, { timeout: 30_000 });
  findings.undone = await types();
  await shot("convert_3_undone");

  // the canvas menu (right-click on empty canvas) holds the same command
  await page.mouse.click(1300, 850, { button: "right" });
  const item = page.locator(".litecontextmenu").getByText("Convert AnimateDiff-Evolved nodes to motion_core",
                                                          { exact: true });
  await item.waitFor({ timeout: 10_000 });
  await shot("convert_4_canvas_menu");
  await item.click();
  await page.waitForSelector("#mc-migrate-report", { timeout: 30_000 });
  findings.after_menu = await types();
} catch (e) {
  findings.failure = String(e?.stack ?? e);
  await shot("convert_failure").catch(() => {});
} finally {
  await browser.close();
}
console.log(JSON.stringify(findings));
