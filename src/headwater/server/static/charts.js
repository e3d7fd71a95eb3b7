/* Headwater UI charts: small hand-written SVG bar and line charts (no library, no CDN). */
"use strict";

const HWCharts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const CHAR_W = 6.4;  // average width of an 11px label character, for the margins

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
    if (Number.isInteger(n)) return String(n);
    if (abs > 0 && abs < 0.001) return n.toExponential(1);
    return n.toFixed(abs < 1 ? 4 : 3).replace(/0+$/, "").replace(/\.$/, "");
  }

  /** Bytes in binary units, the one size unit of the whole UI (tables and charts). */
  function bytes(n) {
    if (n === null || n === undefined) return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let v = n, i = 0;
    while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return i ? `${v.toFixed(1)} ${units[i]}` : `${Math.round(v)} B`;
  }

  /** About ``count`` round tick values covering [lo, hi]. */
  function ticks(lo, hi, count = 4) {
    if (hi === lo) return [lo];
    const raw = (hi - lo) / count, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
    const out = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(Number(t.toPrecision(12)));
    return out;
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
    const f = opts.format || fmt;
    const barW = Math.max(14, Math.min(48, Math.floor(480 / Math.max(1, data.length))));
    const labels = data.map((d) => (String(d.label).length > 16 ? String(d.label).slice(0, 15) + "…" : String(d.label)));
    const longest = Math.max(1, ...labels.map((l) => l.length)) * CHAR_W;
    const max = Math.max(1, ...data.map((d) => d.value || 0));
    const yTicks = ticks(0, max);
    const left = Math.max(36, Math.max(...yTicks.map((t) => f(t).length)) * CHAR_W + 10, longest * 0.82 - 4);
    const h = 150, top = 16, bottom = Math.ceil(longest * 0.57) + 18;  // labels turned 35°
    const w = left + data.length * (barW + 6) + 12;
    const root = svg("svg", { width: w, height: h + bottom + top, role: "img", "aria-label": title });
    const Y = (v) => top + h - (h * v) / max;
    for (const t of yTicks) {
      root.append(svg("line", { x1: left - 4, y1: Y(t), x2: w, y2: Y(t), class: "grid" }),
                  svg("text", { x: left - 6, y: Y(t) + 4, "text-anchor": "end" }, f(t)));
    }
    data.forEach((d, i) => {
      const bh = Math.round((h * (d.value || 0)) / max);
      const x = left + i * (barW + 6);
      const rect = svg("rect", { class: "bar", x, y: top + h - bh, width: barW, height: Math.max(bh, 0) });
      rect.append(svg("title", {}, `${d.label}: ${f(d.value)}`));
      root.append(rect);
      if (data.length <= 24) {
        root.append(svg("text", { x: x + barW / 2, y: top + h - bh - 3, "text-anchor": "middle", class: "value" }, f(d.value)));
      }
      root.append(svg("text", { x: x + barW / 2, y: top + h + 12, "text-anchor": "end",
                                transform: `rotate(-35 ${x + barW / 2} ${top + h + 12})` }, labels[i]));
    });
    if (items.length > data.length) {
      root.append(svg("text", { x: left, y: h + bottom + top - 2 }, `+${items.length - data.length} more`));
    }
    return frame(title, root);
  }

  /**
   * Line chart of [{x (label), y}] — rows, sizes or a scalar over versions. The y axis is scaled
   * to the data (a loss going 0.031 → 0.012 fills the chart); ``opts.zero`` keeps 0 on the axis
   * (counts), ``opts.format`` formats y values (e.g. HWCharts.bytes).
   */
  function line(title, points, opts = {}) {
    const data = points.filter((p) => p.y !== null && p.y !== undefined && !Number.isNaN(p.y));
    const f = opts.format || fmt;
    const h = 160, top = 12, bottom = 30;
    if (!data.length) {
      const root = svg("svg", { width: 320, height: h + top + bottom, role: "img", "aria-label": title });
      root.append(svg("text", { x: 10, y: 30 }, opts.empty || "no data"));
      return frame(title, root);
    }
    let lo = Math.min(...data.map((p) => p.y)), hi = Math.max(...data.map((p) => p.y));
    if (opts.zero) lo = Math.min(0, lo);
    if (hi === lo) { const pad = Math.abs(hi) * 0.1 || 1; lo -= opts.zero && lo === 0 ? 0 : pad; hi += pad; }
    else { const pad = (hi - lo) * 0.08; hi += pad; if (!(opts.zero && lo === 0)) lo -= pad; }
    const yTicks = ticks(lo, hi);
    const left = Math.max(40, Math.max(...yTicks.map((t) => f(t).length)) * CHAR_W + 12);
    const w = Math.max(320, Math.min(900, left + 30 + data.length * 40));
    const root = svg("svg", { width: w, height: h + top + bottom, role: "img", "aria-label": title });
    const step = data.length > 1 ? (w - left - 24) / (data.length - 1) : 0;
    const X = (i) => left + 12 + i * step;
    const Y = (v) => top + h - ((v - lo) * h) / (hi - lo);
    for (const t of yTicks) {
      root.append(svg("line", { x1: left, y1: Y(t), x2: w - 8, y2: Y(t), class: "grid" }),
                  svg("text", { x: left - 6, y: Y(t) + 4, "text-anchor": "end" }, f(t)));
    }
    root.append(svg("path", { class: "line",
      d: data.map((p, i) => `${i ? "L" : "M"}${X(i)},${Y(p.y)}`).join(" ") }));
    const every = Math.ceil(data.length / Math.max(1, Math.floor((w - left) / 44)));
    data.forEach((p, i) => {
      const c = svg("circle", { class: "dot", cx: X(i), cy: Y(p.y), r: 3.5 });
      c.append(svg("title", {}, `${p.x}: ${f(p.y)}`));
      root.append(c);
      if (i % every === 0) root.append(svg("text", { x: X(i), y: top + h + 18, "text-anchor": "middle" }, p.x));
    });
    return frame(title, root);
  }

  return { bars, line, fmt, bytes, ticks };
})();
