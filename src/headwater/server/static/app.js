/* Headwater web UI: a small hash-routed single page app over the REST API (/api/v1).
 * Every value from the API is put into the page with textContent (never innerHTML). */
"use strict";

const READ_ONLY = document.querySelector('meta[name="hw-read-only"]').content === "true";
const BASE = new URL(document.baseURI);  // the <base> the server wrote (works under a mount prefix)
const mainBox = document.getElementById("app");
/* Each navigation renders into a fresh element: a page still loading when the user moves on
 * writes into its own detached element, never over the next page. Pages take it with pageRoot(). */
let currentRoot = mainBox;
const pageRoot = () => currentRoot;

class ApiError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

async function api(path, opts = {}) {
  const headers = Object.assign({}, opts.headers || {});
  const token = localStorage.getItem("hw-token");
  if (token) headers.Authorization = "Bearer " + token;
  if (opts.body && typeof opts.body !== "string") {
    opts = Object.assign({}, opts, { body: JSON.stringify(opts.body) });
    headers["Content-Type"] = "application/json";
  }
  const res = await fetch(new URL("api/v1/" + path, BASE), Object.assign({}, opts, { headers }));
  if (!res.ok) {
    let detail = res.statusText;
    try {
      const body = await res.json();
      detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    } catch (e) { /* not JSON */ }
    throw new ApiError(res.status, detail);
  }
  return res.json();
}

/* -- tiny DOM helpers ----------------------------------------------------------------------- */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
const enc = encodeURIComponent;
const short = (d) => (d || "").slice(0, 12);
const fmt = (n) => HWCharts.fmt(n);
const size = (n) => HWCharts.bytes(n);
function when(iso) { return iso ? iso.replace("T", " ").slice(0, 19) : "–"; }
function pill(text, cls) { return h("span", { class: "pill " + (cls || "") }, text); }
function refParts(ref) {  // "ns/name@7" -> [ns, name, sel]
  const at = ref.lastIndexOf("@");
  const [ns, name] = ref.slice(0, at).split("/");
  return [ns, name, ref.slice(at + 1)];
}
const links = {
  dataset: (ns, name) => `#/d/${enc(ns)}/${enc(name)}`,
  version: (ref) => { const [ns, n, s] = refParts(ref); return `#/v/${enc(ns)}/${enc(n)}/${enc(s)}`; },
  lineage: (ref) => { const [ns, n, s] = refParts(ref); return `#/lineage/${enc(ns)}/${enc(n)}/${enc(s)}`; },
  run: (id) => `#/run/${enc(id)}`,
};
function vpath(ref) { const [ns, n, s] = refParts(ref); return `versions/${enc(ns)}/${enc(n)}/${enc(s)}`; }

function showError(where, err) {
  const box = h("div", { class: "error", role: "alert" }, err.message || String(err));
  if (err.status === 401) {
    box.append(" — ", h("a", { href: "#", onclick: (e) => { e.preventDefault(); askToken(); } }, "set a token"));
  }
  where.replaceChildren(box);
}
function askToken() {
  const current = localStorage.getItem("hw-token") || "";
  const value = prompt("API token for this server (kept in this browser only):", current);
  if (value === null) return;
  if (value) localStorage.setItem("hw-token", value.trim()); else localStorage.removeItem("hw-token");
  route();
}
document.getElementById("token-button").addEventListener("click", askToken);
document.getElementById("mode").textContent = READ_ONLY ? "read-only" : "";

function table(headers, rows, opts = {}) {
  return h("table", { class: opts.class || "" },
    h("thead", {}, h("tr", {}, headers.map((c) => h("th", { class: /^(rows|size|#|count|files|n)$/.test(c) ? "num" : "" }, c)))),
    h("tbody", {}, rows));
}

/* -- stats and reports ---------------------------------------------------------------------- */
const isNumMap = (v) => v && typeof v === "object" && !Array.isArray(v) &&
  Object.keys(v).length > 0 && Object.values(v).every((x) => typeof x === "number");
const isNestedNumMap = (v) => v && typeof v === "object" && !Array.isArray(v) &&
  Object.keys(v).length > 0 && Object.values(v).every((x) => isNumMap(x) || (x && Object.keys(x).length === 0));
const toItems = (m) => Object.entries(m).map(([label, value]) => ({ label, value }));

function renderStats(stats) {
  const box = h("div", { "data-hw": "stats" });
  const charts = h("div", { class: "charts" });
  const scalars = [];
  for (const [key, value] of Object.entries(stats || {})) {
    if (key === "null_counts" && isNumMap(value)) charts.append(HWCharts.bars("Null counts per column", toItems(value)));
    else if (key === "class_histograms" && isNestedNumMap(value)) {
      for (const [part, hist] of Object.entries(value)) charts.append(HWCharts.bars(`Class balance: ${part}`, toItems(hist)));
    } else if (isNumMap(value)) charts.append(HWCharts.bars(key.replace(/_/g, " "), toItems(value)));
    else if (isNestedNumMap(value)) {
      for (const [part, hist] of Object.entries(value)) charts.append(HWCharts.bars(`${key}: ${part}`, toItems(hist)));
    } else scalars.push([key, value]);
  }
  if (charts.childNodes.length) box.append(charts);
  if (scalars.length) {
    box.append(table(["stat", "value"], scalars.map(([k, v]) =>
      h("tr", {}, h("td", {}, k), h("td", { class: "mono" }, typeof v === "object" ? JSON.stringify(v) : String(v))))));
  }
  if (!box.childNodes.length) box.append(h("p", { class: "muted" }, "No stats were logged with this version."));
  return box;
}

function reportPayloadUrl(r, item) {
  return new URL(`api/v1/reports/${enc(r.id)}/payload` + (item === undefined ? "" : `?item=${item}`), BASE).href;
}

function renderReport(r, v) {
  const body = r.body || {};
  const box = h("div", { class: "report", "data-report": r.name, "data-kind": r.kind },
    h("strong", {}, r.name), h("span", { class: "kind" }, `${r.kind} · ${when(r.created_at)}`));
  if (body.caption) box.append(h("div", { class: "muted" }, body.caption));
  if (r.kind === "histogram" && Array.isArray(body.counts)) {
    let labels = body.labels;
    if (!Array.isArray(labels) && Array.isArray(body.edges)) {
      labels = body.counts.map((_, i) => `${fmt(body.edges[i])}–${fmt(body.edges[i + 1])}`);
    }
    const items = body.counts.map((c, i) => ({ label: Array.isArray(labels) ? String(labels[i]) : String(i), value: c }));
    box.append(h("div", { class: "charts" }, HWCharts.bars(`${body.x_title || r.name}` + (body.y_title ? ` (${body.y_title})` : ""), items, { max: 60 })));
  } else if (r.kind === "scalar") {
    const value = h("div", { class: "mono" }, `value: ${fmt(body.value)}`);
    const series = h("div", { class: "charts" });
    box.append(value, series);
    api(`datasets/${enc(v.namespace)}/${enc(v.dataset)}/scalars/${enc(r.name)}`).then((d) => {
      if (d.points.length > 1) series.append(HWCharts.line(`${r.name} across versions`, d.points.map((p) => ({ x: `@${p.version}`, y: p.value }))));
    }).catch(() => {});
  } else if (r.kind === "table") {
    const holder = h("div", { class: "scroll" }, h("p", { class: "muted" }, `${fmt(body.rows)} rows`));
    box.append(holder);
    if (r.has_payload) {
      api(`reports/${enc(r.id)}/rows?limit=200`).then((t) => {
        holder.replaceChildren(sortableTable(t.columns.map((c) => c.name), t.rows));
      }).catch((err) => showError(holder, err));
    }
  } else if (r.kind === "figure") {
    if (r.has_payload && /^image\//.test(r.media_type || "")) box.append(h("img", { src: reportPayloadUrl(r), alt: r.name }));
    else if (body.vega_lite) box.append(vegaLite(body.vega_lite, r.name));
  } else if (r.kind === "samples") {
    const wrap = h("div", { class: "samples" });
    (body.items || []).slice(0, 48).forEach((s, i) => {
      const cap = h("figcaption", {}, s.caption || "");
      if (s.type === "record") wrap.append(h("figure", {}, h("pre", {}, JSON.stringify(s.record, null, 1)), cap));
      else if (s.type === "text") wrap.append(h("figure", {}, h("pre", {}, s.text), cap));
      else if (s.digest && s.type === "image") wrap.append(h("figure", {}, h("img", { src: reportPayloadUrl(r, i), alt: s.caption || s.filename || "sample" }), cap));
      else if (s.digest && s.type === "audio") wrap.append(h("figure", {}, h("audio", { controls: true, src: reportPayloadUrl(r, i) }), cap));
      else if (s.digest) wrap.append(h("figure", {}, h("a", { href: reportPayloadUrl(r, i) }, s.filename || "sample"), cap));
      else wrap.append(h("figure", {}, h("pre", {}, JSON.stringify(s)), cap));
    });
    box.append(wrap);
  }
  if (r.has_payload && r.kind !== "figure") box.append(h("div", {}, h("a", { href: reportPayloadUrl(r) }, "download payload"), ` (${r.media_type || "binary"}, ${size(r.size)})`));
  return box;
}

/** Vega-Lite: bar/line specs with inline values are drawn with our charts; others shown as JSON. */
function vegaLite(spec, title) {
  const values = spec.data && Array.isArray(spec.data.values) ? spec.data.values : null;
  const enc2 = spec.encoding || {};
  const x = enc2.x && enc2.x.field, y = enc2.y && enc2.y.field;
  const mark = typeof spec.mark === "string" ? spec.mark : spec.mark && spec.mark.type;
  if (values && x && y && (mark === "bar" || mark === "line")) {
    const items = values.map((d) => ({ label: String(d[x]), value: Number(d[y]), x: String(d[x]), y: Number(d[y]) }));
    return h("div", { class: "charts" }, mark === "bar" ? HWCharts.bars(spec.title || title, items) : HWCharts.line(spec.title || title, items));
  }
  return h("details", {}, h("summary", {}, "Vega-Lite specification"), h("pre", {}, JSON.stringify(spec, null, 1)));
}

function sortableTable(columns, rows) {
  let sortCol = -1, asc = true;
  const tbody = h("tbody");
  const fill = () => {
    const data = rows.slice();
    if (sortCol >= 0) data.sort((a, b) => {
      const x = Array.isArray(a) ? a[sortCol] : a[columns[sortCol]], y = Array.isArray(b) ? b[sortCol] : b[columns[sortCol]];
      return (x > y ? 1 : x < y ? -1 : 0) * (asc ? 1 : -1);
    });
    tbody.replaceChildren(...data.map((r) => h("tr", {}, columns.map((c, i) => {
      const v = Array.isArray(r) ? r[i] : r[c];
      return h("td", { class: typeof v === "number" ? "num" : "" }, v === null || v === undefined ? "∅" : typeof v === "object" ? JSON.stringify(v) : String(v));
    }))));
  };
  const head = h("tr", {}, columns.map((c, i) => h("th", { onclick: () => { asc = sortCol === i ? !asc : true; sortCol = i; fill(); }, class: "sortable", title: "sort" }, c)));
  fill();
  return h("table", {}, h("thead", {}, head), tbody);
}

/* -- pages ---------------------------------------------------------------------------------- */
async function datasetsPage(params) {
  const app = pageRoot();
  const q = params.get("q") || "";
  const input = h("input", { type: "search", placeholder: "Search datasets (name or ns/name)", value: q, "aria-label": "search datasets", id: "dataset-search" });
  const results = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  app.replaceChildren(h("h1", {}, "Datasets"), h("div", { class: "toolbar" }, input), results);
  let timer = null;
  const load = async () => {
    try {
      const [data, st] = await Promise.all([api(`datasets?limit=500&search=${enc(input.value.trim())}`), statusOf([null])]);
      const rows = data.datasets.map((d) => h("tr", { "data-dataset": d.full_name, "data-status": d.latest ? (st.get(`${d.full_name}@${d.latest.number}`) || {}).status || "" : "" },
        h("td", {}, h("a", { href: links.dataset(d.namespace, d.name) }, d.full_name)),
        h("td", {}, d.type),
        h("td", {}, d.latest ? h("a", { href: links.version(`${d.full_name}@${d.latest.number}`) }, `@${d.latest.number}`) : "–",
          d.latest && d.latest.kind === "external" ? pill("external", "external") : ""),
        h("td", {}, d.latest ? statusPill(st.get(`${d.full_name}@${d.latest.number}`)) : "–"),
        h("td", { class: "num" }, d.latest ? fmt(d.latest.rows) : "–"),
        h("td", { class: "num" }, d.versions),
        h("td", {}, Object.entries(d.aliases).map(([a, n]) => aliasPill(a, n, d.retracted_aliases.includes(a) ? "retracted"
          : d.latest && n === d.latest.number ? ((st.get(`${d.full_name}@${n}`) || {}).status || "fresh") : "fresh"))),
        h("td", {}, d.last_producer || "–"),
        h("td", {}, when(d.latest ? d.latest.created_at : d.created_at))));
      results.replaceChildren(
        h("p", { class: "muted" }, `${data.total} dataset${data.total === 1 ? "" : "s"}`),
        table(["dataset", "type", "latest", "status", "rows", "versions", "aliases", "last producer", "updated"], rows));
    } catch (err) { showError(results, err); }
  };
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => { history.replaceState(null, "", `#/?q=${enc(input.value)}`); load(); }, 200);
  });
  await load();
}

async function datasetPage(ns, name) {
  const app = pageRoot();
  const [ds, vs, st] = await Promise.all([api(`datasets/${enc(ns)}/${enc(name)}`),
                                          api(`datasets/${enc(ns)}/${enc(name)}/versions?limit=1000`), statusOf([ns])]);
  const statusAt = (n) => st.get(`${ns}/${name}@${n}`);
  const versions = vs.versions;
  const statsBox = h("div");
  const select = h("select", { "aria-label": "version for stats" },
    versions.map((v) => h("option", { value: v.number }, `@${v.number}`)));
  const showStats = () => {
    const v = versions.find((x) => String(x.number) === select.value);
    statsBox.replaceChildren(v ? renderStats(v.stats) : h("p", { class: "muted" }, "No versions."));
  };
  select.addEventListener("change", showStats);
  const rows = versions.map((v) => h("tr", { "data-version": v.number },
    h("td", { class: "num" }, h("a", { href: links.version(v.ref) }, v.number)),
    h("td", {}, statusPill(statusAt(v.number))),
    h("td", { class: "mono" }, short(v.digest)),
    h("td", { class: "num" }, fmt(v.rows)),
    h("td", { class: "num" }, size(v.size)),
    h("td", {}, when(v.created_at)),
    h("td", {}, v.run_id ? h("a", { href: links.run(v.run_id) }, v.producer || short(v.run_id)) : "–"),
    h("td", {}, v.aliases.map((a) => aliasPill(a, v.number, (statusAt(v.number) || {}).status)), v.label ? pill(v.label) : "", v.kind === "external" ? pill("external", "external") : ""),
    h("td", {}, h("a", { href: links.lineage(v.ref) }, "lineage"))));
  const chart = HWCharts.line("Rows per version",
    versions.slice().reverse().map((v) => ({ x: `@${v.number}`, y: v.rows })), { empty: "no row counts (not a table)", zero: true });
  const sizeChart = HWCharts.line("Size per version",
    versions.slice().reverse().map((v) => ({ x: `@${v.number}`, y: v.size })), { format: size, zero: true });
  const out = [
    h("h1", {}, `${ds.namespace}/${ds.name}`, " ", pill(ds.type)),
    ds.description ? h("p", {}, ds.description) : "",
    h("dl", { class: "facts" },
      h("dt", {}, "versions"), h("dd", {}, String(vs.total)),
      h("dt", {}, "aliases"), h("dd", {}, Object.keys(ds.aliases).length ? Object.entries(ds.aliases).map(([a, n]) => aliasPill(a, n, (statusAt(n) || {}).status)) : "none"),
      h("dt", {}, "last producer"), h("dd", {}, ds.last_producer || "–"),
      ds.key ? [h("dt", {}, "row key"), h("dd", { class: "mono" }, ds.key.join(", "))] : "",
      ds.openlineage.length ? [h("dt", {}, "OpenLineage"), h("dd", { class: "mono" }, ds.openlineage.map((o) => `${o.namespace} ${o.name}`).join("; "))] : ""),
    h("div", { class: "charts" }, chart, sizeChart),
    h("h2", {}, "Versions"),
    h("div", { class: "scroll" }, table(["#", "status", "digest", "rows", "size", "created", "created by run", "aliases", ""], rows)),
  ];
  if (!READ_ONLY && versions.length) out.push(aliasEditor(ns, name, versions, ds.aliases));
  out.push(h("h2", {}, "Stats ", select), statsBox);
  if (ds.alias_history.length) {
    out.push(h("h2", {}, "Alias history"), table(["alias", "from", "to", "when", "by"],
      ds.alias_history.slice().reverse().map((m) => h("tr", {}, h("td", {}, m.alias), h("td", {}, m.from ?? "–"),
        h("td", {}, m.to ?? "removed"), h("td", {}, when(m.moved_at)), h("td", {}, m.actor || "–")))));
  }
  app.replaceChildren(...out);
  showStats();
}

function aliasEditor(ns, name, versions, aliases) {
  const aliasInput = h("input", { type: "text", placeholder: "alias, e.g. production", "aria-label": "alias name", size: 18 });
  const versionSelect = h("select", { "aria-label": "version" }, versions.map((v) => h("option", { value: v.number }, `@${v.number}`)));
  const status = h("span", { class: "muted" });
  const move = async () => {
    try {
      await api(`datasets/${enc(ns)}/${enc(name)}/aliases/${enc(aliasInput.value.trim())}`,
                { method: "PUT", body: { version: versionSelect.value } });
      route();
    } catch (err) { status.textContent = err.message; status.className = "error"; }
  };
  const remove = async (a) => {
    if (!confirm(`Remove alias ${a}?`)) return;
    try { await api(`datasets/${enc(ns)}/${enc(name)}/aliases/${enc(a)}`, { method: "DELETE" }); route(); }
    catch (err) { status.textContent = err.message; status.className = "error"; }
  };
  return h("div", { class: "toolbar", "data-hw": "alias-editor" }, "Move alias ", aliasInput, " to ", versionSelect,
    h("button", { type: "button", onclick: move }, "Move"),
    Object.keys(aliases).map((a) => h("button", { type: "button", title: `remove ${a}`, onclick: () => remove(a) }, `× ${a}`)),
    status);
}

/* The version page's tabs: ``?tab=`` slugs (the old labels still work as deep links). */
const VERSION_TABS = [["overview", "overview"], ["files", "files"], ["rows", "schema & rows"], ["columns", "column lineage"], ["diff", "diff"], ["reports", "reports"]];
const TAB_ALIASES = { "schema & rows": "rows", schema: "rows", "schema-rows": "rows" };

async function versionPage(ns, name, sel, params) {
  const app = pageRoot();
  const ref = `${ns}/${name}@${sel}`;
  const v = await api(vpath(ref));
  const exact = v.ref;
  const body = h("div");
  const tabBar = h("div", { class: "tabs", role: "tablist" });
  const show = (tab, extra) => {
    [...tabBar.children].forEach((b) => { b.classList.toggle("active", b.dataset.tab === tab); b.setAttribute("aria-selected", String(b.dataset.tab === tab)); });
    history.replaceState(null, "", `${links.version(exact)}?tab=${enc(tab)}`);
    body.replaceChildren(h("p", { class: "muted" }, "Loading…"));
    const pages = { overview: versionOverview, files: versionFiles, rows: versionRows, columns: versionColumns, diff: versionDiff, reports: versionReports };
    pages[tab](v, body, extra).catch((err) => showError(body, err));
  };
  VERSION_TABS.forEach(([slug, label]) => tabBar.append(h("button", { type: "button", role: "tab", "data-tab": slug, onclick: () => show(slug) }, label)));
  const st = v.status || { status: v.retracted ? "retracted" : "fresh", causes: [] };
  app.replaceChildren(
    h("h1", {}, h("a", { href: links.dataset(v.namespace, v.dataset) }, `${v.namespace}/${v.dataset}`), `@${v.number}`, " ",
      statusPill(st), " ", v.aliases.map((a) => aliasPill(a, v.number, st.status)), v.label ? pill(v.label) : "", v.external ? pill("external", "external") : ""),
    h("div", { class: "toolbar" }, h("a", { href: links.lineage(exact) }, "Lineage"), " · ",
      h("a", { href: links.lineage(exact) + "?impact=1", id: "impact-link" }, "Impact (what came from it)")),
    await retractionBox(v, st),
    tabBar, body);
  const wanted = TAB_ALIASES[params.get("tab")] || params.get("tab");
  show(VERSION_TABS.some(([slug]) => slug === wanted) ? wanted : "overview", { prefix: params.get("prefix") || "", offset: Number(params.get("offset")) || 0 });
}

/** Status causes, the retraction history, and Retract / Unretract (unless read-only). */
async function retractionBox(v, st) {
  const box = h("div", { class: "retraction", "data-hw": "retraction" });
  let history = [];
  try { history = (await api(`${vpath(v.ref)}/retractions`)).history; } catch (err) { /* older server */ }
  if (st.status !== "fresh" && st.causes.length) {
    box.append(h("div", { class: st.status === "retracted" ? "error" : "notice", "data-hw": "status-causes" },
      h("strong", {}, st.status === "retracted" ? "Retracted" : "Stale"), ": ",
      h("ul", {}, st.causes.map((c) => h("li", {}, causeText(c))))));
  }
  if (history.length) {
    box.append(h("details", { open: st.status === "retracted" },
      h("summary", {}, `Retraction history (${history.length})`),
      table(["action", "when", "who", "reason"], history.map((e) => h("tr", {}, h("td", {}, e.action), h("td", {}, when(e.at)),
        h("td", {}, e.actor || "–"), h("td", {}, e.reason || ""))))));
  }
  if (READ_ONLY || v.external) return box;
  const retracted = st.status === "retracted" || v.retracted;
  const reason = h("textarea", { rows: 2, placeholder: retracted ? "why it is good after all" : "why this version is bad (kept in the history)", "aria-label": "reason", id: "retract-reason" });
  const actor = h("input", { type: "text", placeholder: "who (optional)", "aria-label": "actor", size: 16 });
  const msg = h("span", { class: "muted" });
  const form = h("div", { class: "toolbar", hidden: true },
    reason, actor,
    h("button", { type: "button", class: "primary", id: "retract-submit", onclick: async () => {
      if (!reason.value.trim()) { msg.textContent = "a reason is required"; msg.className = "error"; return; }
      try {
        await api(`${vpath(v.ref)}/${retracted ? "unretract" : "retract"}`, { method: "POST",
          body: { reason: reason.value.trim(), actor: actor.value.trim() || null } });
        route();
      } catch (err) { msg.textContent = err.message; msg.className = "error"; }
    } }, retracted ? "Unretract" : "Retract"), msg);
  box.append(h("button", { type: "button", id: "retract-button", onclick: () => { form.hidden = !form.hidden; if (!form.hidden) reason.focus(); } },
    retracted ? "Unretract…" : "Retract…"), form);
  return box;
}

async function versionOverview(v, body) {
  const facts = [
    ["digest", h("span", { class: "mono" }, v.digest)], ["kind", v.kind], ["rows", fmt(v.row_count)],
    ["size", size(v.size)], ["files", String(v.file_count)], ["created", when(v.created_at)],
    ["created by run", v.run ? [h("a", { href: links.run(v.run.id) }, v.run.job), " ", pill(v.run.state, "state-" + v.run.state)] : "–"],
  ];
  if (v.run) {  // a derived version: the versions its run read
    const inputs = h("span", { "data-hw": "inputs" }, "…");
    facts.push(["inputs", inputs]);
    api(`runs/${enc(v.run.id)}`).then((r) => {
      inputs.replaceChildren(...(r.inputs.length ? r.inputs.flatMap((i) => [h("a", { href: links.version(i.ref), "data-input": i.ref }, i.ref), " "]) : ["none"]));
    }).catch((err) => { inputs.textContent = err.message; });
  }
  facts.push(["parents", v.parents.length ? v.parents.map((p) => [h("a", { href: links.version(p) }, p), " "]) : "–"]);
  if (v.external) facts.push(["recorded from", h("span", { class: "mono" }, JSON.stringify((v.metadata || {}).openlineage || {}))]);
  const out = [h("dl", { class: "facts" }, facts.map(([k, val]) => [h("dt", {}, k), h("dd", {}, val)]))];
  if (v.annotation && v.annotation.description) out.push(h("h2", {}, "Description"), h("pre", {}, v.annotation.description));
  if (v.annotation && Object.keys(v.annotation.properties || {}).length) {
    out.push(h("h2", {}, "Properties"), table(["property", "value"], Object.entries(v.annotation.properties).map(([k, val]) =>
      h("tr", {}, h("td", {}, k), h("td", { class: "mono" }, JSON.stringify(val))))));
  }
  const meta = Object.entries(v.metadata || {}).filter(([k]) => k !== "openlineage");
  if (meta.length) out.push(h("h2", {}, "Metadata"), table(["key", "value"], meta.map(([k, val]) =>
    h("tr", {}, h("td", {}, k), h("td", { class: "mono" }, JSON.stringify(val))))));
  out.push(h("h2", {}, "Stats"), renderStats(v.stats));
  out.push(h("h2", {}, "Reports"), h("div", { id: "reports-summary" }, v.reports ? `${v.reports} report(s): see the reports tab.` : "none"));
  body.replaceChildren(...out);
}

const FILES_PAGE = 200;

/** The manifest browser: one folder at a time, files paged with counts; prefix and page in the URL. */
async function versionFiles(v, body, where = {}) {
  const prefix = where.prefix || "", offset = where.offset || 0;
  const m = await api(`${vpath(v.ref)}/manifest?prefix=${enc(prefix)}&limit=${FILES_PAGE}&offset=${offset}`);
  const go = (p, o) => (e) => { e.preventDefault(); versionFiles(v, body, { prefix: p, offset: o }).catch((err) => showError(body, err)); };
  history.replaceState(null, "", `${links.version(v.ref)}?tab=files` + (m.prefix ? `&prefix=${enc(m.prefix)}` : "") + (offset ? `&offset=${offset}` : ""));
  const crumbs = [h("a", { href: "#", onclick: go("", 0) }, "/")];
  let acc = "";
  for (const part of m.prefix.split("/").filter(Boolean)) {
    acc += part + "/";
    crumbs.push(" ", h("a", { href: "#", onclick: go(acc, 0) }, part + "/"));
  }
  const rows = [
    ...(offset ? [] : m.dirs.map((d) => h("tr", { "data-dir": d.name }, h("td", {}, h("a", { href: "#", onclick: go(m.prefix + d.name + "/", 0) }, d.name + "/")),
      h("td", { class: "num" }, size(d.size)), h("td", { class: "num" }, fmt(d.files)), h("td", {}, "")))),
    ...m.files.map((f) => h("tr", { "data-file": f.path }, h("td", {}, h("a", { href: new URL(`api/v1/${vpath(v.ref)}/files/${f.path.split("/").map(enc).join("/")}`, BASE).href }, f.path.slice(m.prefix.length))),
      h("td", { class: "num" }, size(f.size)), h("td", { class: "num" }, ""), h("td", { class: "mono" }, short(f.digest || (f.source ? "reference" : ""))))),
  ];
  const first = m.matching ? offset + 1 : 0, last = offset + m.files.length;
  const pager = (where2) => h("div", { class: "pager", "data-hw": "files-pager-" + where2 },
    h("span", { class: "files-count" }, m.dirs.length ? `${fmt(m.dirs.length)} folder${m.dirs.length === 1 ? "" : "s"}, ` : "",
      m.matching ? `files ${fmt(first)}–${fmt(last)} of ${fmt(m.matching)} here` : "no files here"),
    offset > 0 ? h("button", { type: "button", class: "files-prev", onclick: go(m.prefix, Math.max(0, offset - FILES_PAGE)) }, "‹ previous") : "",
    last < m.matching ? h("button", { type: "button", class: "files-next", onclick: go(m.prefix, offset + FILES_PAGE) }, `next ${fmt(Math.min(FILES_PAGE, m.matching - last))} ›`) : "");
  body.replaceChildren(h("p", { class: "muted" }, `${fmt(m.total_files)} files, ${size(m.total_size)} in this version`),
    h("div", {}, crumbs), pager("top"), table(["path", "size", "files", "digest"], rows), m.matching > FILES_PAGE ? pager("bottom") : "");
}

async function versionRows(v, body) {
  const out = [];
  if (v.schema && v.schema.length) {
    out.push(h("h2", {}, "Schema"), table(["column", "type", "nulls"], v.schema.map((c) =>
      h("tr", {}, h("td", {}, c.name), h("td", { class: "mono" }, c.type || ""),
        h("td", { class: "num" }, ((v.stats || {}).null_counts || {})[c.name] ?? "–")))));
  }
  try {
    const r = await api(`${vpath(v.ref)}/rows?limit=50`);
    out.push(h("h2", {}, `Sample rows (${r.rows.length} of ${fmt(r.rows_total ?? r.rows_in_file)}, from ${r.file})`),
      h("div", { class: "scroll", "data-hw": "sample-rows" }, sortableTable(r.columns.map((c) => c.name), r.rows)));
  } catch (err) {
    out.push(h("p", { class: "muted" }, err.message));
  }
  body.replaceChildren(...out);
}

/** Column-level lineage: each output column and the input columns it was computed from (the
 * producer's columnLineage facet, or the mapping of Headwater's own step). */
async function versionColumns(v, body) {
  let c;
  try { c = await api(`${vpath(v.ref)}/column-lineage`); } catch (err) {
    if (err.status === 404) { body.replaceChildren(h("p", { class: "muted" }, "No column lineage is recorded for this version.")); return; }
    throw err;
  }
  if (!c.fields.length) { body.replaceChildren(h("p", { class: "muted" }, "No column lineage is recorded for this version.")); return; }
  const inputLink = (i) => {
    const label = `${i.dataset || `${i.namespace} ${i.name}`}.${i.field}`;
    return i.dataset ? h("a", { href: links.dataset(...i.dataset.split("/")), "data-from": `${i.dataset}.${i.field}` }, label) : h("span", { class: "mono" }, label);
  };
  const rows = c.fields.map((f) => h("tr", { "data-column": f.field },
    h("td", { class: "mono" }, f.field), h("td", { class: "mono" }, f.type || ""),
    h("td", {}, f.inputs.length ? f.inputs.flatMap((i, k) => [k ? ", " : "", inputLink(i)]) : h("span", { class: "muted" }, "new (no input column)")),
    h("td", {}, [f.transformationType, f.transformationDescription].filter(Boolean).join(": ") ||
      [...new Set(f.inputs.flatMap((i) => (i.transformations || []).map((t) => [t.type, t.subtype].filter(Boolean).join(" "))))].join(", "))));
  body.replaceChildren(h("p", { class: "muted" }, `${c.fields.length} columns · ${c.source === "event" ? "sent by the producer (OpenLineage columnLineage facet)" : "derived from Headwater's step"}`),
    h("div", { class: "scroll", "data-hw": "column-lineage" }, table(["column", "type", "computed from", "transformation"], rows)));
}

async function versionDiff(v, body) {
  const vs = await api(`datasets/${enc(v.namespace)}/${enc(v.dataset)}/versions?limit=1000`);
  const others = vs.versions.filter((x) => x.number !== v.number);
  const select = h("select", { "aria-label": "compare against" }, others.map((x) => h("option", { value: x.number }, `@${x.number} ${x.aliases.join(" ")}`)));
  const prev = others.find((x) => x.number < v.number);
  if (prev) select.value = String(prev.number);
  const key = h("input", { type: "text", placeholder: "key columns (optional)", size: 22, "aria-label": "key columns" });
  const out = h("div", { "data-hw": "diff" });
  const run = async () => {
    out.replaceChildren(h("p", { class: "muted" }, "Comparing…"));
    try {
      const d = await api(`${vpath(v.ref)}/diff?against=${enc(select.value)}${key.value.trim() ? "&key=" + enc(key.value.trim()) : ""}`);
      out.replaceChildren(...renderDiff(d));
    } catch (err) { showError(out, err); }
  };
  body.replaceChildren(h("div", { class: "toolbar" }, `Compare @${v.number} against `, select, key,
    h("button", { type: "button", class: "primary", onclick: run }, "Diff")), out);
  if (!others.length) out.replaceChildren(h("p", { class: "muted" }, "This dataset has a single version."));
  else await run();
}

function renderDiff(d) {
  const f = d.files;
  const out = [h("h2", {}, `${d.a} → ${d.b}`), h("p", {}, d.identical ? "Identical content." :
    `${f.added.length} added, ${f.removed.length} removed, ${f.changed.length} changed, ${f.unchanged} unchanged files`)];
  const rows = [
    ...f.added.map((e) => h("tr", { class: "diff-added" }, h("td", {}, "+"), h("td", {}, e.path), h("td", { class: "num" }, size(e.size)))),
    ...f.removed.map((e) => h("tr", { class: "diff-removed" }, h("td", {}, "−"), h("td", {}, e.path), h("td", { class: "num" }, size(e.size)))),
    ...f.changed.map((c) => h("tr", {}, h("td", {}, "~"), h("td", {}, c.path), h("td", { class: "num" }, `${size(c.old.size)} → ${size(c.new.size)}`))),
  ];
  if (rows.length) out.push(h("div", { class: "scroll" }, table(["", "file", "size"], rows.slice(0, 2000))));
  const r = d.rows;
  if (r) {
    out.push(h("h2", {}, `Rows (key: ${r.key.join(", ")})`),
      h("p", {}, h("span", { class: "diff-added" }, `+${r.added} added`), " · ", h("span", { class: "diff-removed" }, `−${r.removed} removed`),
        ` · ~${r.changed} changed · ${r.unchanged} unchanged`));
    if (r.columns_added.length || r.columns_removed.length || Object.keys(r.columns_retyped).length) {
      out.push(h("h3", {}, "Schema"), h("ul", {}, r.columns_added.map((c) => h("li", { class: "diff-added" }, `+ ${c}`)),
        r.columns_removed.map((c) => h("li", { class: "diff-removed" }, `− ${c}`)),
        Object.entries(r.columns_retyped).map(([c, [a, b]]) => h("li", {}, `${c}: ${a} → ${b}`))));
    }
    if (Object.keys(r.cells_changed).length) out.push(h("div", { class: "charts" }, HWCharts.bars("Changed cells per column", toItems(r.cells_changed))));
    for (const [title, sample] of [["Added rows (sample)", r.sample_added], ["Removed rows (sample)", r.sample_removed], ["Changed rows (sample)", r.sample_changed]]) {
      if (sample && sample.length) {
        const cols = [...new Set(sample.flatMap((x) => Object.keys(x)))];
        out.push(h("h3", {}, title), h("div", { class: "scroll" }, sortableTable(cols, sample)));
      }
    }
  }
  return out;
}

async function versionReports(v, body) {
  const data = await api(`${vpath(v.ref)}/reports`);
  // Reports (issue 10): tables, histograms, figures, samples and scalars logged with the version.
  const section = h("section", { id: "reports", "data-hw": "reports" });
  if (!data.reports.length) section.append(h("p", { class: "muted" }, "No reports were logged with this version."));
  data.reports.forEach((r) => section.append(renderReport(r, v)));
  body.replaceChildren(section);
}

/** Status (fresh / stale / retracted) of every version of the given namespaces (null: the latest
 * version of every dataset): Map ref → {status, causes, aliases}. */
async function statusOf(namespaces) {
  const out = new Map();
  await Promise.all([...namespaces].map(async (ns) => {
    try {
      const d = await api(ns === null ? "status" : `status?namespace=${enc(ns)}&all_versions=true`);
      d.versions.forEach((s) => out.set(s.ref, s));
    } catch (err) { /* status is an extra: the graph still draws without it */ }
  }));
  return out;
}

function causeText(c) {
  const bits = [c.cause.replace(/_/g, " ")];
  if (c.input) bits.push(c.input);
  if (c.selector) bits.push(`(read as @${c.selector})`);
  if (c.reason) bits.push(`— ${c.reason}`);
  if (c.via) bits.push(`via ${c.via}`);
  if (c.newer_run) bits.push(`newer run ${short(c.newer_run)}`);
  return bits.join(" ");
}

/** An alias pill, flagged when the version it points at is stale or retracted. */
function aliasPill(alias, number, status) {
  const bad = status && status !== "fresh";
  return h("span", { class: "pill alias" + (bad ? " flagged" : ""), "data-alias": alias, "data-alias-status": status || "fresh",
    title: bad ? `${alias} points at a ${status} version` : null }, `${alias}→${number}` + (bad ? ` (${status})` : ""));
}

function statusPill(s) {
  if (!s) return "";
  return h("span", { class: "pill status status-" + s.status, title: (s.causes || []).map(causeText).join("\n") }, s.status);
}

async function lineagePage(ns, name, sel, params) {
  const app = pageRoot();
  const ref = `${ns}/${name}@${sel}`;
  const root = await api(vpath(ref));
  const exact = root.ref;
  const depth = h("input", { type: "number", min: 1, max: 100, value: params.get("depth") || 10, "aria-label": "depth", class: "narrow" });
  const graphBox = h("div", { class: "graph", id: "lineage-graph" });
  const detail = h("div", { class: "panel", id: "node-detail" }, h("p", { class: "muted" }, "Click a node for details."));
  const impactBox = h("div", { id: "impact-panel" });
  const layoutSel = h("select", { "aria-label": "layout direction", id: "layout-direction" },
    h("option", { value: "auto" }, "layout: auto"), h("option", { value: "LR" }, "left → right"), h("option", { value: "TB" }, "top → down"));
  const state = { graph: null, selected: null, impacted: new Set(), impactRoot: null, expanded: new Set(),
                  collapsed: new Set(), status: new Map() };
  let view = null;
  const expandable = () => {  // versions at the edge of what is loaded: more may lie beyond
    const indeg = new Map(), outdeg = new Map();
    for (const e of state.graph.edges) { outdeg.set(e.from, 1); indeg.set(e.to, 1); }
    return new Set(state.graph.nodes.filter((n) => n.type === "version" && !state.expanded.has(n.id) &&
      (!indeg.has(n.id) || !outdeg.has(n.id))).map((n) => n.id));
  };
  const redraw = (recenter) => view.render(state.graph, {
    selected: state.selected && state.selected.id, impacted: state.impacted, impactRoot: state.impactRoot,
    status: state.status, collapsed: state.collapsed, collapsible: view.collapsible(state.graph, state.collapsed),
    expandable: expandable(), rankdir: layoutSel.value, recenter,
    onSelect: select, onExpand: expand, onCollapse: toggleCollapse });
  const refreshStatus = async () => {
    state.status = await statusOf(new Set(state.graph.nodes.filter((n) => n.type === "version").map((n) => n.dataset.split("/")[0])));
  };
  const toggleCollapse = (node) => {
    if (state.collapsed.has(node.id)) state.collapsed.delete(node.id); else state.collapsed.add(node.id);
    redraw(false);
  };
  const expand = async (node) => {
    try {
      const more = await api(`${vpath(node.ref)}/lineage?direction=both&depth=2`);
      state.expanded.add(node.id);
      state.collapsed.delete(node.id);
      state.graph = HWGraph.merge(state.graph, more);
      await refreshStatus();
      redraw(false);
    } catch (err) { showError(detail, err); }
  };
  const impact = async (node) => {
    impactBox.replaceChildren(h("p", { class: "muted" }, "Computing impact…"));
    try {
      const [down, rep] = await Promise.all([api(`${vpath(node.ref)}/lineage?direction=down&depth=100`), api(`${vpath(node.ref)}/impact`)]);
      state.graph = HWGraph.merge(state.graph, down);
      state.impacted = new Set(rep.nodes);
      state.impactRoot = node.id;
      state.collapsed.clear();
      await refreshStatus();
      redraw(true);
      const ds = Object.entries(rep.datasets);
      const commands = rep.rebuild_commands || rep.airflow_clear_commands || [];
      impactBox.replaceChildren(h("div", { class: "panel impact", "data-hw": "impact" },
        h("h3", {}, `Impact of ${node.ref}`),
        h("p", { class: "muted" }, `${ds.length} dataset${ds.length === 1 ? "" : "s"}, ${rep.nodes.filter((n) => n.startsWith("version:")).length} versions derived from it`),
        ds.length ? h("ul", { class: "impact-list" }, ds.map(([d, refs]) => h("li", { "data-impacted": d }, h("a", { href: links.dataset(...d.split("/")) }, d), ": ",
          refs.map((r) => [h("a", { href: links.version(r) }, "@" + r.split("@")[1]), " ", statusPill(state.status.get(r)), " "])))) : h("p", {}, "Nothing was derived from it."),
        rep.tasks.length ? [h("h3", {}, "Tasks that produced them"), h("ul", {}, rep.tasks.map((t) => h("li", {}, t.label)))] : "",
        commands.length ? [h("h3", {}, "Rebuild (headwater rebuild, or by hand)"), h("pre", { class: "wrap", "data-hw": "rebuild-commands" }, commands.join("\n"))] : "",
        h("p", {}, h("button", { type: "button", onclick: () => { state.impacted = new Set(); state.impactRoot = null; impactBox.replaceChildren(); redraw(false); } }, "Clear impact"))));
    } catch (err) { showError(impactBox, err); }
  };
  const select = (node) => {
    state.selected = node;
    redraw(false);
    if (node.type === "version") {
      const s = state.status.get(node.ref);
      detail.replaceChildren(h("h3", {}, node.ref, " ", statusPill(s)), h("dl", { class: "facts" },
        h("dt", {}, "type"), h("dd", {}, node.dataset_type || ""), h("dt", {}, "digest"), h("dd", { class: "mono" }, short(node.digest)),
        h("dt", {}, "rows"), h("dd", {}, fmt(node.rows)), h("dt", {}, "created"), h("dd", {}, when(node.created_at)),
        s && s.aliases && s.aliases.length ? [h("dt", {}, "aliases"), h("dd", {}, s.aliases.map((a) => pill(a, "alias" + (s.status !== "fresh" ? " flagged" : ""))))] : ""),
        s && s.causes.length ? h("ul", { class: "causes" }, s.causes.map((c) => h("li", {}, causeText(c)))) : "",
        h("div", { class: "toolbar" },
          h("a", { class: "open", href: links.version(node.ref) }, "Open version"),
          h("a", { href: links.dataset(...node.dataset.split("/")) }, "Dataset"),
          h("a", { href: links.lineage(node.ref) }, "Center here"),
          h("button", { type: "button", onclick: () => expand(node) }, "Expand"),
          h("button", { type: "button", class: "primary", id: "impact-button", onclick: () => impact(node) }, "Impact")));
    } else {
      const eng = node.engine || {};
      detail.replaceChildren(h("h3", {}, `run ${HWGraph.runTitle(node)}`), h("dl", { class: "facts" },
        h("dt", {}, "job"), h("dd", {}, node.job),
        h("dt", {}, "state"), h("dd", {}, pill(node.state, "state-" + node.state)),
        h("dt", {}, "engine"), h("dd", {}, [eng.name, eng.version].filter(Boolean).join(" ") || "headwater"),
        eng.dag_id ? [h("dt", {}, "Airflow task"), h("dd", {}, `${eng.dag_id}.${eng.task_id || ""}`)] : "",
        h("dt", {}, "started"), h("dd", {}, when(node.started_at))),
        h("div", { class: "toolbar" }, h("a", { class: "open", href: links.run(node.run_id) }, "Open run")));
    }
  };
  const rootFresh = statusPill(root.status);
  app.replaceChildren(
    h("h1", {}, "Lineage of ", h("a", { href: links.version(exact) }, exact), " ", rootFresh),
    h("div", { class: "toolbar" }, "depth ", depth,
      h("button", { type: "button", onclick: () => load() }, "Reload"),
      h("span", { class: "sep" }),
      h("button", { type: "button", title: "zoom out", "aria-label": "zoom out", onclick: () => view.zoom(1 / 1.25) }, "−"),
      h("button", { type: "button", title: "zoom in", "aria-label": "zoom in", onclick: () => view.zoom(1.25) }, "+"),
      h("button", { type: "button", id: "fit-button", onclick: () => view.fit() }, "Fit"),
      h("button", { type: "button", id: "center-button", onclick: () => view.centerOn(state.graph.root) }, `Centre on ${exact}`),
      layoutSel,
      h("span", { class: "sep" }),
      h("button", { type: "button", id: "impact-root-button", class: "primary", onclick: () => impact(state.graph.nodes.find((n) => n.id === state.graph.root)) }, `Impact of ${exact}`)),
    h("div", { class: "legend" }, h("span", { class: "lv" }, "version"), h("span", { class: "lr" }, "run (named by its task)"),
      h("span", { class: "ls" }, "stale"), h("span", { class: "lx" }, "retracted"),
      h("span", { class: "li" }, "derived from the impact root"), h("span", { class: "ll" }, "task run → pipeline run"),
      h("span", { class: "hint" }, "drag to pan · wheel to zoom · + loads more · − collapses")),
    h("div", { class: "graph-wrap" }, graphBox, h("div", { class: "side" }, detail, impactBox)));
  view = HWGraph.view(graphBox);
  layoutSel.addEventListener("change", () => redraw(true));
  const load = async () => {
    state.graph = await api(`${vpath(exact)}/lineage?direction=both&depth=${enc(depth.value)}`);
    state.expanded = new Set([state.graph.root]);
    state.impacted = new Set(); state.impactRoot = null; state.collapsed = new Set();
    await refreshStatus();
    redraw(true);
    const rootNode = state.graph.nodes.find((n) => n.id === state.graph.root);
    select(rootNode);
    if (params.get("impact") === "1") await impact(rootNode);
  };
  await load();
}

async function runsPage() {
  const app = pageRoot();
  const data = await api("runs?limit=200");
  app.replaceChildren(h("h1", {}, "Runs"), h("p", { class: "muted" }, `${data.total} runs (newest 200)`),
    table(["run", "job", "state", "engine", "started", "duration", "inputs", "outputs"], data.runs.map((r) =>
      h("tr", {}, h("td", { class: "mono" }, h("a", { href: links.run(r.id) }, short(r.id))), h("td", {}, r.job_full_name),
        h("td", {}, pill(r.state, "state-" + r.state)), h("td", {}, (r.engine.name || "headwater") + (r.ingested ? " (OpenLineage)" : "")),
        h("td", {}, when(r.started_at)), h("td", { class: "num" }, r.duration_seconds === null ? "–" : `${r.duration_seconds.toFixed(1)} s`),
        h("td", { class: "num" }, r.inputs), h("td", { class: "num" }, r.outputs)))));
}

async function runPage(id) {
  const app = pageRoot();
  const r = await api(`runs/${enc(id)}`);
  const eng = r.engine || {};
  const versionsTable = (items, output) => items.length ? table(["version", "digest", "rows", "size", output ? "new" : ""], items.map((v) =>
    h("tr", {}, h("td", {}, h("a", { href: links.version(v.ref) }, v.ref), v.kind === "external" ? pill("external", "external") : ""),
      h("td", { class: "mono" }, short(v.digest)), h("td", { class: "num" }, fmt(v.rows)), h("td", { class: "num" }, size(v.size)),
      h("td", {}, output ? (v.created ? "yes" : "no (same content)") : "")))) : h("p", { class: "muted" }, "none");
  const facts = [
    ["job", r.job_full_name], ["state", pill(r.state, "state-" + r.state)],
    ["engine", [eng.name || "headwater", eng.version].filter(Boolean).join(" ")],
    eng.dag_id ? ["Airflow task", `${eng.dag_id}.${eng.task_id || ""}`] : null,
    eng.producer ? ["producer", eng.producer] : null,
    ["started", when(r.started_at)], ["ended", when(r.ended_at)],
    ["duration", r.duration_seconds === null ? "–" : `${r.duration_seconds.toFixed(2)} s`],
    ["code fingerprint", h("span", { class: "mono" }, r.code_fingerprint || "–")],
    ["cache key", h("span", { class: "mono" }, r.cache_key || "–")],
    r.nominal_time ? ["nominal time", when(r.nominal_time)] : null,
    r.parent ? ["parent", `${r.parent.namespace}/${r.parent.job} (${short(r.parent.run_id)})`] : null,
    r.reused_run_id ? ["reused outputs of", h("a", { href: links.run(r.reused_run_id) }, short(r.reused_run_id))] : null,
  ].filter(Boolean);
  const out = [h("h1", {}, "Run ", h("span", { class: "mono" }, r.id)),
    h("dl", { class: "facts" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]))];
  if (r.error) out.push(h("h2", {}, "Error"), h("pre", { class: "error" }, r.error));
  out.push(h("h2", {}, "Parameters"), Object.keys(r.params).length ? table(["parameter", "value"], Object.entries(r.params).map(([k, v]) =>
    h("tr", {}, h("td", {}, k), h("td", { class: "mono" }, JSON.stringify(v))))) : h("p", { class: "muted" }, "none"));
  out.push(h("h2", {}, "Inputs"), versionsTable(r.inputs, false), h("h2", {}, "Outputs"), versionsTable(r.outputs, true));
  const engineRest = Object.entries(eng).filter(([k]) => !["name", "version", "dag_id", "task_id", "producer", "ingested"].includes(k));
  if (engineRest.length) out.push(h("h2", {}, "Engine details"), table(["key", "value"], engineRest.map(([k, v]) =>
    h("tr", {}, h("td", {}, k), h("td", { class: "mono" }, typeof v === "object" ? JSON.stringify(v) : String(v))))));
  if (r.events.length) out.push(h("h2", {}, "OpenLineage events received"), table(["event", "time", "producer"], r.events.map((e) =>
    h("tr", {}, h("td", {}, e.event_type), h("td", {}, when(e.event_time)), h("td", {}, e.producer || "")))));
  app.replaceChildren(...out);
}

/* -- router --------------------------------------------------------------------------------- */
async function route() {
  const [path, query] = (location.hash.slice(1) || "/").split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const app = currentRoot = h("div", { class: "page" }, h("p", { class: "muted" }, "Loading…"));
  mainBox.replaceChildren(app);
  try {
    if (!parts.length) await datasetsPage(params);
    else if (parts[0] === "d" && parts.length === 3) await datasetPage(parts[1], parts[2]);
    else if (parts[0] === "v" && parts.length === 4) await versionPage(parts[1], parts[2], parts[3], params);
    else if (parts[0] === "lineage" && parts.length >= 3) await lineagePage(parts[1], parts[2], parts[3] || "latest", params);
    else if (parts[0] === "runs") await runsPage();
    else if (parts[0] === "run" && parts.length === 2) await runPage(parts[1]);
    else app.replaceChildren(h("h1", {}, "Not found"), h("p", {}, h("a", { href: "#/" }, "Back to the datasets")));
    document.title = "Headwater · " + (parts.join(" / ") || "datasets");
  } catch (err) {
    showError(app, err);
  }
}
// Tabs and pages within a page update the URL with history.replaceState, which fires no
// hashchange: every hashchange is a navigation (a link, back/forward, a pasted ?tab= deep link).
window.addEventListener("hashchange", () => route());
route();
