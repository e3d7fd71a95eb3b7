/* Headwater UI charts: small hand-written SVG bar and line charts (no library, no CDN). */
"use strict";

const HWCharts = (() => {
  const NS = "http://www.w3.org/2000/svg";

  function svg(tag, attrs, text) {
    const el = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    if (text !== undefined) el.textContent = String(text);
    return el;
  }

  function fmt(n) {
    if (n === null || n === undefined || Number.isNaN(n)) return "–";
    const abs = Math.abs(n);
    if (abs >= 1e9) return (n / 1e9).toFixed(1) + "G";
    if (abs >= 1e6) return (n / 1e6).toFixed(1) + "M";
    if (abs >= 1e4) return (n / 1e3).toFixed(1) + "k";
    return Number.isInteger(n) ? String(n) : n.toFixed(3).replace(/0+$/, "").replace(/\.$/, "");
  }

  function frame(title, node) {
    const box = document.createElement("div");
    box.className = "chart";
    const t = document.createElement("div");
    t.className = "title";
    t.textContent = title;
    box.append(t, node);
    return box;
  }

  /** Bar chart of [{label, value}] — class balance, null counts, part sizes. */
  function bars(title, items, opts = {}) {
    const data = items.slice(0, opts.max || 40);
    const barW = Math.max(14, Math.min(48, Math.floor(480 / Math.max(1, data.length))));
    const h = 150, left = 44, bottom = 46, top = 14;
    const w = left + data.length * (barW + 6) + 10;
    const max = Math.max(1, ...data.map((d) => d.value || 0));
    const root = svg("svg", { width: w, height: h + bottom + top, role: "img",
                              "aria-label": title });
    root.append(svg("text", { x: 2, y: top + 4 }, fmt(max)), svg("text", { x: 2, y: top + h }, "0"));
    root.append(svg("line", { x1: left - 4, y1: top + h, x2: w, y2: top + h, stroke: "#ccd3db" }));
    data.forEach((d, i) => {
      const bh = Math.round((h * (d.value || 0)) / max);
      const x = left + i * (barW + 6);
      const rect = svg("rect", { class: "bar", x, y: top + h - bh, width: barW, height: Math.max(bh, 0) });
      rect.append(svg("title", {}, `${d.label}: ${fmt(d.value)}`));
      root.append(rect);
      root.append(svg("text", { x: x + barW / 2, y: top + h - bh - 3, "text-anchor": "middle" },
                      fmt(d.value)));
      const label = String(d.label).length > 12 ? String(d.label).slice(0, 11) + "…" : String(d.label);
      root.append(svg("text", { x: x + barW / 2, y: top + h + 12, "text-anchor": "end",
                                transform: `rotate(-35 ${x + barW / 2} ${top + h + 12})` }, label));
    });
    if (items.length > data.length) {
      root.append(svg("text", { x: left, y: h + bottom + top - 2 }, `+${items.length - data.length} more`));
    }
    return frame(title, root);
  }

  /** Line chart of [{x (label), y}] — rows over versions. */
  function line(title, points, opts = {}) {
    const data = points.filter((p) => p.y !== null && p.y !== undefined);
    const w = Math.max(320, Math.min(900, 60 + data.length * 40)), h = 160, left = 50, top = 12, bottom = 28;
    const root = svg("svg", { width: w, height: h + top + bottom, role: "img", "aria-label": title });
    if (!data.length) {
      root.append(svg("text", { x: 10, y: 30 }, opts.empty || "no data"));
      return frame(title, root);
    }
    const max = Math.max(1, ...data.map((p) => p.y));
    const min = Math.min(0, ...data.map((p) => p.y));
    const step = data.length > 1 ? (w - left - 16) / (data.length - 1) : 0;
    const X = (i) => left + i * step;
    const Y = (v) => top + h - ((v - min) * h) / (max - min || 1);
    root.append(svg("text", { x: 2, y: top + 4 }, fmt(max)), svg("text", { x: 2, y: top + h }, fmt(min)));
    root.append(svg("line", { x1: left, y1: top + h, x2: w - 8, y2: top + h, stroke: "#ccd3db" }));
    root.append(svg("path", { class: "line",
      d: data.map((p, i) => `${i ? "L" : "M"}${X(i)},${Y(p.y)}`).join(" ") }));
    data.forEach((p, i) => {
      const c = svg("circle", { class: "dot", cx: X(i), cy: Y(p.y), r: 3.5 });
      c.append(svg("title", {}, `${p.x}: ${fmt(p.y)}`));
      root.append(c);
      if (data.length <= 30 || i % Math.ceil(data.length / 30) === 0) {
        root.append(svg("text", { x: X(i), y: top + h + 16, "text-anchor": "middle" }, p.x));
      }
    });
    return frame(title, root);
  }

  return { bars, line, fmt };
})();
