/* Headwater lineage graph: versions and runs laid out by dagre (vendored, static/vendor/dagre),
 * drawn as SVG with pan and zoom, wrapped full labels, collapse/expand, impact and status colours. */
"use strict";

const HWGraph = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const FONT = "13px system-ui, -apple-system, 'Segoe UI', sans-serif";
  const SUB_FONT = "11px system-ui, -apple-system, 'Segoe UI', sans-serif";
  const MAX_W = 250, MIN_W = 120, PAD_X = 10, LINE = 16, SUB_LINE = 14, PAD_Y = 8;
  const MIN_READABLE = 0.85;  // never open the view smaller than this: pan instead

  function el(tag, attrs, text) {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = String(text);
    return e;
  }

  let ctx = null;
  function textWidth(text, font) {
    ctx = ctx || document.createElement("canvas").getContext("2d");
    ctx.font = font;
    return ctx.measureText(text).width;
  }

  /** Break ``text`` into lines no wider than ``max`` px, preferring breaks after / . _ - @ space. */
  function wrap(text, font, max) {
    text = String(text || "");
    if (textWidth(text, font) <= max) return [text];
    const parts = text.split(/(?<=[/._\-@ ·])/);
    const lines = [];
    let cur = "";
    const push = (s) => {  // a part wider than a line on its own is cut by characters
      while (textWidth(s, font) > max) {
        let n = s.length - 1;
        while (n > 1 && textWidth(s.slice(0, n), font) > max) n--;
        lines.push(s.slice(0, n));
        s = s.slice(n);
      }
      return s;
    };
    for (const p of parts) {
      if (textWidth(cur + p, font) <= max) cur += p;
      else { if (cur) lines.push(cur); cur = push(p); }
    }
    if (cur) lines.push(cur);
    return lines;
  }

  /** What a run node is called: its Airflow task, else its job without namespace or DAG prefix. */
  function runTitle(n) {
    const eng = n.engine || {};
    if (eng.task_id) return eng.task_id;
    const job = String(n.job || "");
    const name = job.includes("/") ? job.slice(job.indexOf("/") + 1) : job;
    return eng.dag_id && name.startsWith(eng.dag_id + ".") ? name.slice(eng.dag_id.length + 1) : name;
  }

  function runSub(n) {
    const eng = n.engine || {};
    const where = eng.dag_id || [eng.name || "headwater", eng.version].filter(Boolean).join(" ");
    return n.state && n.state !== "COMPLETED" ? `${where} · ${n.state}` : where;
  }

  function versionSub(n, status) {
    const bits = [n.dataset_type || "", (n.digest || "").slice(0, 10)];
    if (n.rows !== null && n.rows !== undefined) bits.push(`${HWCharts.fmt(n.rows)} rows`);
    if (n.kind === "external") bits.push("external");
    if (status && status.status !== "fresh") bits.push(status.status.toUpperCase());
    return bits.filter(Boolean).join(" · ");
  }

  /** Node box size and label lines. */
  function measure(n, status) {
    const title = n.type === "version" ? `${n.dataset}@${n.number}` : runTitle(n);
    const sub = n.type === "version" ? versionSub(n, status) : runSub(n);
    const inner = MAX_W - 2 * PAD_X - 14;  // room for the +/− badge
    const lines = wrap(title, FONT, inner), subs = wrap(sub, SUB_FONT, inner);
    const widest = Math.max(...lines.map((l) => textWidth(l, FONT)), ...subs.map((l) => textWidth(l, SUB_FONT)));
    const width = Math.max(MIN_W, Math.min(MAX_W, Math.ceil(widest) + 2 * PAD_X + 14));
    return { lines, subs, width, height: PAD_Y * 2 + lines.length * LINE + subs.length * SUB_LINE };
  }

  /** dagre layout of the visible nodes; ``rankdir`` LR or TB. */
  function layout(nodes, edges, sizes, rankdir) {
    const g = new dagre.graphlib.Graph({ multigraph: true });
    g.setGraph({ rankdir, nodesep: rankdir === "LR" ? 14 : 22, ranksep: rankdir === "LR" ? 46 : 34,
                 edgesep: 8, marginx: 16, marginy: 16 });
    g.setDefaultEdgeLabel(() => ({}));
    for (const n of nodes) g.setNode(n.id, { width: sizes.get(n.id).width, height: sizes.get(n.id).height });
    for (const e of edges) g.setEdge(e.from, e.to, {}, `${e.kind}|${e.from}|${e.to}`);
    dagre.layout(g);
    const gl = g.graph();
    return { g, width: Math.ceil(gl.width || 0), height: Math.ceil(gl.height || 0) };
  }

  /** A smooth path through dagre's edge points (B-spline, like d3.curveBasis). */
  function curve(pts) {
    if (pts.length < 3) return `M${pts[0].x},${pts[0].y}` + pts.slice(1).map((p) => ` L${p.x},${p.y}`).join("");
    let d = `M${pts[0].x},${pts[0].y} L${(5 * pts[0].x + pts[1].x) / 6},${(5 * pts[0].y + pts[1].y) / 6}`;
    for (let i = 1; i < pts.length - 1; i++) {
      const a = pts[i - 1], b = pts[i], c = pts[i + 1];
      d += ` C${(2 * a.x + b.x) / 3},${(2 * a.y + b.y) / 3} ${(a.x + 2 * b.x) / 3},${(a.y + 2 * b.y) / 3}` +
           ` ${(a.x + 4 * b.x + c.x) / 6},${(a.y + 4 * b.y + c.y) / 6}`;
    }
    const y = pts[pts.length - 2], z = pts[pts.length - 1];
    d += ` C${(2 * y.x + z.x) / 3},${(2 * y.y + z.y) / 3} ${(y.x + 2 * z.x) / 3},${(y.y + 2 * z.y) / 3} ${z.x},${z.y}`;
    return d;
  }

  /** Nodes visible from the root when ``collapsed`` nodes are not walked through. */
  function adjacency(nodeIds, edges) {
    const adj = new Map([...nodeIds].map((i) => [i, []]));
    for (const e of edges) {
      if (adj.has(e.from) && adj.has(e.to)) { adj.get(e.from).push(e.to); adj.get(e.to).push(e.from); }
    }
    return adj;
  }

  function visibleFrom(root, nodeIds, edges, collapsed) {
    const adj = adjacency(nodeIds, edges);
    const seen = new Set([root]), queue = [root];
    for (let head = 0; head < queue.length; head++) {
      const n = queue[head];
      if (collapsed.has(n) && n !== root) continue;
      for (const m of adj.get(n) || []) if (!seen.has(m)) { seen.add(m); queue.push(m); }
    }
    return seen;
  }

  /** Nodes whose collapse would hide something: the articulation points between the root and
   *  the rest (Tarjan's lowpoints on a depth-first walk from the root, iterative: O(nodes+edges)). */
  function cutNodes(root, nodeIds, edges, collapsed) {
    const adj = adjacency(nodeIds, edges);
    const disc = new Map(), low = new Map(), out = new Set();
    let time = 0;
    disc.set(root, time); low.set(root, time++);
    const stack = [[root, null, 0]];
    while (stack.length) {
      const top = stack[stack.length - 1];
      const [u, parent] = top;
      const nbrs = collapsed.has(u) && u !== root ? [] : adj.get(u) || [];
      if (top[2] < nbrs.length) {
        const v = nbrs[top[2]++];
        if (!disc.has(v)) { disc.set(v, time); low.set(v, time++); stack.push([v, u, 0]); }
        else if (v !== parent) low.set(u, Math.min(low.get(u), disc.get(v)));
      } else {
        stack.pop();
        if (parent !== null) {
          low.set(parent, Math.min(low.get(parent), low.get(u)));
          if (parent !== root && low.get(u) >= disc.get(parent)) out.add(parent);
        }
      }
    }
    return out;
  }

  /**
   * A graph view in ``container``: ``view.render(graph, opts)`` draws; pan with the mouse, zoom with
   * the wheel or the toolbar. opts: root, selected, impacted (Set), impactRoot, status (Map ref →
   * {status, causes}), collapsed (Set of ids), expandable (Set of ids), onSelect, onExpand,
   * onCollapse, recenter (bool), rankdir ("auto" | "LR" | "TB").
   */
  function view(container) {
    const svg = el("svg", { "data-hw": "lineage-graph", class: "graph-svg", role: "img",
                            "aria-label": "lineage graph" });
    const defs = el("defs");
    for (const [id, cls] of [["arrow", "arrow"], ["arrow-hot", "arrow hot"], ["arrow-link", "arrow link"]]) {
      const m = el("marker", { id, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7,
                               orient: "auto-start-reverse" });
      m.append(el("path", { d: "M0,0 L10,5 L0,10 z", class: cls }));
      defs.append(m);
    }
    const vp = el("g", { class: "viewport" });
    svg.append(defs, vp);
    container.replaceChildren(svg);
    const st = { k: 1, x: 0, y: 0, width: 0, height: 0, pos: null, rankdir: "LR" };
    const apply = () => vp.setAttribute("transform", `translate(${st.x},${st.y}) scale(${st.k})`);
    const box = () => ({ w: container.clientWidth || 800, h: container.clientHeight || 500 });

    function zoomAt(factor, cx, cy) {
      const k = Math.max(0.15, Math.min(3, st.k * factor));
      st.x = cx - ((cx - st.x) * k) / st.k;
      st.y = cy - ((cy - st.y) * k) / st.k;
      st.k = k;
      apply();
    }
    svg.addEventListener("wheel", (ev) => {
      ev.preventDefault();
      const r = svg.getBoundingClientRect();
      zoomAt(Math.exp(-ev.deltaY * 0.0015), ev.clientX - r.left, ev.clientY - r.top);
    }, { passive: false });
    let drag = null;
    svg.addEventListener("pointerdown", (ev) => {
      if (ev.target.closest && ev.target.closest(".node")) return;
      drag = { x: ev.clientX, y: ev.clientY, sx: st.x, sy: st.y };
      svg.setPointerCapture(ev.pointerId);
      svg.classList.add("panning");
    });
    svg.addEventListener("pointermove", (ev) => {
      if (!drag) return;
      st.x = drag.sx + ev.clientX - drag.x;
      st.y = drag.sy + ev.clientY - drag.y;
      apply();
    });
    const stop = () => { drag = null; svg.classList.remove("panning"); };
    svg.addEventListener("pointerup", stop);
    svg.addEventListener("pointercancel", stop);

    /** Put node ``id`` in the middle of the box at scale ``k``. */
    function centerOn(id, k) {
      const p = st.pos && st.pos.get(id);
      const { w, h } = box();
      if (k !== undefined) st.k = k;
      if (!p) { st.x = 0; st.y = 0; apply(); return; }
      st.x = w / 2 - p.x * st.k;
      st.y = h / 2 - p.y * st.k;
      // as close to centred as the graph allows: no empty band where it could show more, and a
      // graph smaller than the box stays wholly inside it
      const gw = st.width * st.k, gh = st.height * st.k;
      st.x = gw > w ? Math.min(0, Math.max(w - gw, st.x)) : Math.min(w - gw - 4, Math.max(4, st.x));
      st.y = gh > h ? Math.min(0, Math.max(h - gh, st.y)) : Math.min(h - gh - 4, Math.max(4, st.y));
      apply();
    }

    /** The root as central as possible, at the largest scale (up to 1) that shows the whole graph,
     *  never below a readable scale: pan for the rest. */
    function home(root) {
      const { w, h } = box();
      const fit = Math.min(1, (w - 8) / Math.max(1, st.width), (h - 8) / Math.max(1, st.height));
      centerOn(root, Math.max(MIN_READABLE, fit));
    }

    function fitAll() {
      const { w, h } = box();
      st.k = Math.min(1.5, (w - 16) / Math.max(1, st.width), (h - 16) / Math.max(1, st.height));
      st.x = (w - st.width * st.k) / 2;
      st.y = (h - st.height * st.k) / 2;
      apply();
    }

    function render(graph, opts = {}) {
      const status = opts.status || new Map();
      const collapsed = opts.collapsed || new Set();
      const ids = new Set(graph.nodes.map((n) => n.id));
      const shown = visibleFrom(graph.root, ids, graph.edges, collapsed);
      const nodes = graph.nodes.filter((n) => shown.has(n.id));
      const edges = graph.edges.filter((e) => shown.has(e.from) && shown.has(e.to));
      const hiddenBehind = new Map();  // collapsed id -> how many nodes it hides
      for (const c of collapsed) {
        if (!shown.has(c)) continue;
        const only = visibleFrom(graph.root, ids, graph.edges, new Set([...collapsed].filter((x) => x !== c)));
        hiddenBehind.set(c, [...only].filter((i) => !shown.has(i)).length);
      }
      const sizes = new Map(nodes.map((n) => [n.id, measure(n, n.type === "version" ? status.get(n.ref) : null)]));
      // orientation: whichever shows the graph larger in this box (a long chain reads top-down)
      let lay;
      const want = opts.rankdir || "auto";
      const { w: bw, h: bh } = box();
      const key = [want, bw, bh, nodes.map((n) => `${n.id}:${sizes.get(n.id).width}x${sizes.get(n.id).height}`).join(","),
                   edges.map((e) => `${e.from}>${e.to}>${e.kind}`).join(",")].join("|");
      if (st.cache && st.cache.key === key) { lay = st.cache.lay; }  // a click or a colour change: same layout
      else if (want === "auto") {
        const { w, h } = box();
        const hBudget = Math.max(h, 560);
        const lr = layout(nodes, edges, sizes, "LR"), tb = layout(nodes, edges, sizes, "TB");
        const scale = (l) => Math.min(1, w / Math.max(1, l.width), hBudget / Math.max(1, l.height));
        lay = scale(tb) > scale(lr) * 1.05 ? tb : lr;
        st.rankdir = lay === tb ? "TB" : "LR";
      } else { lay = layout(nodes, edges, sizes, want); st.rankdir = want; }
      st.cache = { key, lay };
      st.width = lay.width; st.height = lay.height;
      st.pos = new Map(nodes.map((n) => [n.id, lay.g.node(n.id)]));
      svg.dataset.rankdir = st.rankdir;

      const impacted = opts.impacted || new Set();
      const nodeById = new Map(nodes.map((n) => [n.id, n]));
      const items = [];
      for (const e of lay.g.edges()) {
        const [kind, from, to] = [e.name.split("|")[0], e.v, e.w];
        const pts = lay.g.edge(e).points;
        const cls = ["edge", "kind-" + kind];
        const a = nodeById.get(from), b = nodeById.get(to);
        const link = a && b && a.type === "run" && b.type === "run";  // task run → pipeline run
        if (link) cls.push("run-link");
        const hot = impacted.has(to) && (impacted.has(from) || from === opts.impactRoot);
        if (hot) cls.push("impacted");
        const path = el("path", { class: cls.join(" "), d: curve(pts), "data-edge": `${from}→${to}`,
                                  "marker-end": `url(#${hot ? "arrow-hot" : link ? "arrow-link" : "arrow"})` });
        path.append(el("title", {}, kind === "parent" ? "parent version" : link ? "parent run" : kind));
        items.push(path);
      }
      for (const n of nodes) {
        const p = st.pos.get(n.id), sz = sizes.get(n.id);
        const s = n.type === "version" ? status.get(n.ref) : null;
        const cls = ["node", n.type];
        if (n.kind === "external") cls.push("external");
        if (n.state) cls.push("state-" + n.state);
        if (s) cls.push("status-" + s.status);
        if (n.id === graph.root) cls.push("root");
        if (n.id === opts.selected) cls.push("selected");
        if (impacted.has(n.id)) cls.push("impacted");
        if (n.id === opts.impactRoot) cls.push("impact-root");
        if (collapsed.has(n.id)) cls.push("collapsed");
        const g = el("g", { class: cls.join(" "), "data-node": n.id,
                            transform: `translate(${p.x - sz.width / 2},${p.y - sz.height / 2})`,
                            tabindex: 0, role: "button", "aria-label": (n.type === "version" ? n.ref : `run ${runTitle(n)}`) });
        g.append(el("rect", { width: sz.width, height: sz.height, rx: n.type === "run" ? 14 : 5 }));
        const label = el("text", { class: "label" });
        let y = PAD_Y + 12;
        for (const line of sz.lines) { label.append(el("tspan", { x: PAD_X, y }, line)); y += LINE; }
        for (const line of sz.subs) { label.append(el("tspan", { x: PAD_X, y: y - 1, class: "sub" }, line)); y += SUB_LINE; }
        g.append(label);
        const tip = n.type === "version" ? n.ref + (s && s.status !== "fresh" ? ` (${s.status}: ${(s.causes || []).map((c) => c.kind || c.cause || "").join(", ")})` : "")
          : `run ${n.run_id} (${n.job})`;
        g.append(el("title", {}, tip));
        const badge = (sym, cls2, title, fn, dx) => {
          const b = el("g", { class: "badge " + cls2, transform: `translate(${sz.width - dx},${10})`, role: "button" });
          b.append(el("circle", { r: 7 }), el("text", { x: 0, y: 4, "text-anchor": "middle" }, sym), el("title", {}, title));
          b.addEventListener("click", (ev) => { ev.stopPropagation(); fn(n); });
          g.append(b);
          return b;
        };
        if (opts.expandable && opts.expandable.has(n.id) && opts.onExpand) {
          badge("+", "expand-button", "load more lineage around this version", opts.onExpand, 10).setAttribute("data-expand", n.id);
        } else if (collapsed.has(n.id) && opts.onCollapse) {
          badge("+", "uncollapse", `show the ${hiddenBehind.get(n.id) || 0} hidden nodes behind this one`, opts.onCollapse, 10)
            .setAttribute("data-uncollapse", n.id);
        } else if (opts.collapsible && opts.collapsible.has(n.id) && opts.onCollapse) {
          badge("−", "collapse", "hide what lies beyond this node", opts.onCollapse, 10).setAttribute("data-collapse", n.id);
        }
        if (collapsed.has(n.id)) g.append(el("text", { x: sz.width - 22, y: sz.height - 6, class: "hidden-count", "text-anchor": "end" }, `${hiddenBehind.get(n.id) || 0} hidden`));
        g.addEventListener("click", () => opts.onSelect && opts.onSelect(n));
        g.addEventListener("keydown", (ev) => { if (ev.key === "Enter") opts.onSelect && opts.onSelect(n); });
        items.push(g);
      }
      vp.replaceChildren(...items);
      if (opts.recenter) home(graph.root);
      else apply();
      return svg;
    }

    /** Ids whose collapse would hide something (every non-root node with nodes only behind it). */
    function collapsible(graph, collapsed) {
      const ids = new Set(graph.nodes.map((n) => n.id));
      const cuts = cutNodes(graph.root, ids, graph.edges, collapsed);
      return new Set(graph.nodes.filter((n) => n.type === "version" && cuts.has(n.id) && !collapsed.has(n.id)).map((n) => n.id));
    }

    return { render, centerOn: (id) => centerOn(id, Math.max(st.k, MIN_READABLE)), home, fit: fitAll,
             zoom: (f) => { const { w, h } = box(); zoomAt(f, w / 2, h / 2); }, collapsible,
             state: () => ({ k: st.k, x: st.x, y: st.y, width: st.width, height: st.height, rankdir: st.rankdir }) };
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

  return { view, merge, wrap, runTitle };
})();
