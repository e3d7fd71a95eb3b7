"""Time the web UI's lineage graph (dagre layout in both directions + SVG + collapse candidates) in
headless Chromium on synthetic graphs: one source version feeding B branches of S steps each
(run + version per step), so nodes = 1 + 2*B*S.

    .venv/bin/python bench/ui_graph_render.py [--sizes 50,200,500,1000]

Serves the packaged static files only (no catalog). The first render lays out; the next ones (a
node selected, as a click does) reuse the layout: their median of 3 is printed too.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import socket
import threading
from pathlib import Path

import headwater.server

STATIC = Path(headwater.server.__file__).parent / "static"

PAGE = """<!doctype html><html><head><meta charset="utf-8">
<link rel="stylesheet" href="app.css"></head><body>
<div class="graph" id="g"></div>
<script src="vendor/dagre/dagre.min.js"></script><script src="charts.js"></script>
<script src="graph.js"></script></body></html>"""

TIME = """(n) => {
  const branches = Math.max(1, Math.round(Math.sqrt((n - 1) / 2))), steps = Math.max(1, Math.round((n - 1) / 2 / branches));
  const nodes = [{ id: "v:src", type: "version", ref: "ns/source_dataset@1", dataset: "ns/source_dataset", number: 1,
                   dataset_type: "table", digest: "abcdef0123", rows: 1000 }];
  const edges = [];
  for (let b = 0; b < branches; b++) {
    let prev = "v:src";
    for (let s = 0; s < steps; s++) {
      const r = `r:${b}:${s}`, v = `v:${b}:${s}`;
      nodes.push({ id: r, type: "run", run_id: r, job: `ns/branch_${b}_step_${s}`, state: "COMPLETED",
                   engine: { name: "airflow", dag_id: "dag", task_id: `branch_${b}_step_${s}_task` } });
      nodes.push({ id: v, type: "version", ref: `ns/branch_${b}_step_${s}_output@1`, dataset: `ns/branch_${b}_step_${s}_output`,
                   number: 1, dataset_type: "table", digest: "0123456789", rows: 10 });
      edges.push({ from: prev, to: r, kind: "input" }, { from: r, to: v, kind: "output" });
      prev = v;
    }
  }
  const graph = { root: "v:src", nodes, edges };
  const view = HWGraph.view(document.getElementById("g"));
  const times = [];
  for (let i = 0; i < 4; i++) {
    const t0 = performance.now();
    view.render(graph, { collapsible: view.collapsible(graph, new Set()), recenter: true, selected: nodes[i].id });
    times.push(performance.now() - t0);
  }
  const again = times.slice(1).sort((a, b) => a - b);
  return [nodes.length, times[0], again[1]];
}"""  # noqa: E501


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="50,200,500,1000")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(STATIC))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path="/usr/bin/chromium",
                               args=["--headless", "--no-sandbox", "--disable-gpu"])
        page = b.new_page(viewport={"width": 1400, "height": 900})
        page.route("**/bench.html", lambda route: route.fulfill(body=PAGE,
                                                                  content_type="text/html"))
        page.goto(f"http://127.0.0.1:{port}/bench.html")
        for n in (int(x) for x in args.sizes.split(",")):
            nodes, first, again = page.evaluate(TIME, n)
            print(f"{nodes:6d} nodes: first render (layout LR+TB) {first:8.1f} ms, "
                  f"re-render on a click (cached layout) {again:7.1f} ms")
        b.close()
    httpd.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
