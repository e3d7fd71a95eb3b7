/* Headwater lineage graph: layered layout of versions and runs drawn as SVG (hand-written). */
"use strict";

const HWGraph = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const COL = 250, ROW = 64, NODE_W = 200, NODE_H = 44, PAD = 30;

  function el(tag, attrs, text) {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = String(text);
    return e;
  }

  function clip(text, n) {
    text = String(text || "");
    return text.length > n ? text.slice(0, n - 1) + "…" : text;
  }

  /** Longest-path layers (sources left), then two barycenter sweeps to reduce crossings. */
  function layout(nodes, edges) {
    const ids = nodes.map((n) => n.id);
    const succ = new Map(ids.map((i) => [i, []]));
    const pred = new Map(ids.map((i) => [i, []]));
    for (const e of edges) {
      if (succ.has(e.from) && pred.has(e.to)) { succ.get(e.from).push(e.to); pred.get(e.to).push(e.from); }
    }
    const indeg = new Map(ids.map((i) => [i, pred.get(i).length]));
    const layer = new Map(ids.map((i) => [i, 0]));
    const queue = ids.filter((i) => indeg.get(i) === 0);
    let seen = 0;
    while (queue.length) {
      const n = queue.shift();
      seen++;
      for (const m of succ.get(n)) {
        layer.set(m, Math.max(layer.get(m), layer.get(n) + 1));
        indeg.set(m, indeg.get(m) - 1);
        if (indeg.get(m) === 0) queue.push(m);
      }
    }
    const layers = [];
    for (const i of ids) {
      const l = layer.get(i);
      (layers[l] = layers[l] || []).push(i);
    }
    const pos = new Map();
    layers.forEach((col) => col.sort().forEach((id, k) => pos.set(id, k)));
    for (let sweep = 0; sweep < 4; sweep++) {
      const forward = sweep % 2 === 0;
      const order = forward ? layers.keys() : [...layers.keys()].reverse();
      for (const l of order) {
        const col = layers[l];
        if (!col) continue;
        const nb = forward ? pred : succ;
        const score = (id) => {
          const ps = nb.get(id).filter((x) => pos.has(x)).map((x) => pos.get(x));
          return ps.length ? ps.reduce((a, b) => a + b, 0) / ps.length : pos.get(id);
        };
        col.sort((a, b) => score(a) - score(b));
        col.forEach((id, k) => pos.set(id, k));
      }
    }
    const height = Math.max(...layers.map((c) => (c ? c.length : 0)), 1);
    const xy = new Map();
    layers.forEach((col, l) => {
      if (!col) return;
      const offset = ((height - col.length) * ROW) / 2;
      col.forEach((id, k) => xy.set(id, { x: PAD + l * COL, y: PAD + offset + k * ROW }));
    });
    return { xy, width: PAD * 2 + layers.length * COL, height: PAD * 2 + height * ROW, cyclic: seen < ids.length };
  }

  /**
   * Draw ``graph`` ({nodes, edges}) into ``container``. ``opts``: root (id), selected (id),
   * impacted (Set of ids), impactRoot (id), frontier (Set of ids that can be expanded),
   * onSelect(node), onExpand(node).
   */
  function draw(container, graph, opts = {}) {
    const { xy, width, height } = layout(graph.nodes, graph.edges);
    const svg = el("svg", { width, height, viewBox: `0 0 ${width} ${height}`, "data-hw": "lineage-graph" });
    const defs = el("defs");
    const marker = el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7,
                                  markerHeight: 7, orient: "auto-start-reverse" });
    marker.append(el("path", { d: "M0,0 L10,5 L0,10 z", fill: "#9aa6b2" }));
    defs.append(marker);
    svg.append(defs);
    const impacted = opts.impacted || new Set();
    for (const e of graph.edges) {
      const a = xy.get(e.from), b = xy.get(e.to);
      if (!a || !b) continue;
      const x1 = a.x + NODE_W, y1 = a.y + NODE_H / 2, x2 = b.x, y2 = b.y + NODE_H / 2;
      const mx = (x1 + x2) / 2;
      const cls = ["edge", e.kind];
      if (impacted.has(e.to) && (impacted.has(e.from) || e.from === opts.impactRoot)) cls.push("impacted");
      svg.append(el("path", { class: cls.join(" "), d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`,
                              "marker-end": "url(#arrow)" }));
    }
    for (const n of graph.nodes) {
      const p = xy.get(n.id);
      const cls = ["node", n.type];
      if (n.kind === "external") cls.push("external");
      if (n.state) cls.push("state-" + n.state);
      if (n.id === opts.root) cls.push("root");
      if (n.id === opts.selected) cls.push("selected");
      if (impacted.has(n.id)) cls.push("impacted");
      if (n.id === opts.impactRoot) cls.push("impact-root");
      const g = el("g", { class: cls.join(" "), transform: `translate(${p.x},${p.y})`, "data-node": n.id,
                          tabindex: 0, role: "button" });
      g.append(el("rect", { width: NODE_W, height: NODE_H, rx: n.type === "run" ? 16 : 5 }));
      if (n.type === "version") {
        g.append(el("text", { x: 10, y: 18 }, clip(`${n.dataset}@${n.number}`, 30)));
        g.append(el("text", { x: 10, y: 34, class: "sub" },
                    clip(`${n.dataset_type || ""} · ${(n.digest || "").slice(0, 10)}` +
                         (n.rows !== null && n.rows !== undefined ? ` · ${HWCharts.fmt(n.rows)} rows` : ""), 34)));
      } else {
        g.append(el("text", { x: 12, y: 18 }, clip(n.job, 30)));
        const eng = n.engine || {};
        const where = eng.dag_id ? `${eng.dag_id}.${eng.task_id || ""}` : (eng.name || "headwater");
        g.append(el("text", { x: 12, y: 34, class: "sub" }, clip(`${n.state} · ${where}`, 34)));
      }
      g.append(el("title", {}, n.type === "version" ? n.ref : `run ${n.run_id} (${n.job})`));
      if (opts.frontier && opts.frontier.has(n.id)) {
        const plus = el("g", { class: "expand-button", "data-expand": n.id,
                               transform: `translate(${NODE_W - 16},${NODE_H / 2})` });
        plus.append(el("circle", { r: 8, class: "expand" }), el("text", { x: -4, y: 4 }, "+"));
        plus.addEventListener("click", (ev) => { ev.stopPropagation(); opts.onExpand && opts.onExpand(n); });
        g.append(plus);
      }
      g.addEventListener("click", () => opts.onSelect && opts.onSelect(n));
      g.addEventListener("keydown", (ev) => { if (ev.key === "Enter") opts.onSelect && opts.onSelect(n); });
      svg.append(g);
    }
    container.replaceChildren(svg);
    // wider than the box: scale down to fit (click "actual size" in the page to scroll instead)
    const room = container.clientWidth - 4;
    if (!opts.actualSize && room > 200 && width > room) {
      const scale = Math.max(0.7, room / width);  // never smaller than readable: scroll instead
      svg.setAttribute("width", Math.round(width * scale));
      svg.setAttribute("height", Math.round(height * scale));
    }
    return svg;
  }

  /** Merge graph ``b`` into ``a`` (nodes by id, edges by from/to/kind). */
  function merge(a, b) {
    const nodes = new Map(a.nodes.map((n) => [n.id, n]));
    for (const n of b.nodes) if (!nodes.has(n.id)) nodes.set(n.id, n);
    const key = (e) => `${e.from}|${e.to}|${e.kind}`;
    const edges = new Map(a.edges.map((e) => [key(e), e]));
    for (const e of b.edges) edges.set(key(e), e);
    return { root: a.root, nodes: [...nodes.values()], edges: [...edges.values()] };
  }

  return { draw, layout, merge };
})();
