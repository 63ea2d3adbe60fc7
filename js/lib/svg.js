// Draw a windows layout (windows_view.js) as an inline SVG. Colours are inline: the pack adds no global CSS.
const NS = "http://www.w3.org/2000/svg";
const WINDOW = "#4a90d9";
const OVERLAP = "#f0b429";

function el(name, attrs) {
  const node = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

/** Replace `svg`'s children with the layout's rectangles; each window row is a <g data-window="i">. */
export function drawWindows(svg, layout) {
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${layout.width} ${Math.max(layout.height, 1)}`);
  svg.setAttribute("width", "100%");
  svg.setAttribute("height", String(Math.max(layout.height, 1)));
  layout.rows.forEach((row, i) => {
    const g = el("g", { "data-window": i, "data-label": row.label });
    for (const c of row.cells) {
      g.appendChild(el("rect", { x: c.x, y: row.y, width: Math.max(c.w, 0.5), height: row.h, fill: WINDOW, rx: 1,
                                 "data-start": c.start, "data-end": c.end, class: "mc-cell" }));
    }
    for (const o of row.overlaps) {
      g.appendChild(el("rect", { x: o.x, y: row.y, width: Math.max(o.w, 0.5), height: row.h, fill: OVERLAP,
                                 "fill-opacity": 0.75, "data-start": o.start, "data-end": o.end, class: "mc-overlap" }));
    }
    svg.appendChild(g);
  });
}
