"""The web view's stylesheet and script, served from the package (nothing is fetched from
anywhere: the pages work offline). The script only ever sets ``textContent`` and attributes,
never HTML, so a task named ``<script>`` stays text even in what it updates."""

from __future__ import annotations

__all__ = ["SCRIPT", "STYLE"]

STYLE = """
:root { --ok: #2e7d32; --bad: #c62828; --run: #1565c0; --wait: #9e9e9e; --skip: #8d6e63;
        --retry: #ef6c00; --cancel: #6a1b9a; --fg: #212121; --muted: #616161; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg);
       margin: 0; background: #fafafa; }
header { background: #263238; color: #fff; padding: 10px 20px; }
header a { color: #fff; text-decoration: none; font-weight: 600; }
header .where { color: #b0bec5; margin-left: 12px; font-size: 12px; }
main { padding: 16px 20px; }
h1 { font-size: 20px; margin: 4px 0 12px; }
h2 { font-size: 16px; margin: 20px 0 8px; }
table { border-collapse: collapse; background: #fff; width: 100%; }
th, td { text-align: left; padding: 5px 10px; border-bottom: 1px solid #e0e0e0;
         vertical-align: top; }
th { background: #eceff1; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td { white-space: nowrap; } td.error, td.muted { white-space: normal; }
.muted { color: var(--muted); }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; color: #fff;
         font-size: 12px; }
.s-completed { background: var(--ok); } .s-failed, .s-upstream_failed { background: var(--bad); }
.s-running { background: var(--run); } .s-pending, .s-unknown { background: var(--wait); }
.s-skipped { background: var(--skip); } .s-retrying { background: var(--retry); }
.s-cancelled, .s-interrupted { background: var(--cancel); }
svg .node rect { stroke: #37474f; stroke-width: 1; rx: 6; }
svg .node text { fill: #fff; font-size: 12px; }
svg .n-completed rect { fill: var(--ok); } svg .n-failed rect,
svg .n-upstream_failed rect { fill: var(--bad); } svg .n-running rect { fill: var(--run); }
svg .n-pending rect, svg .n-unknown rect { fill: var(--wait); }
svg .n-skipped rect { fill: var(--skip); } svg .n-retrying rect { fill: var(--retry); }
svg .n-cancelled rect { fill: var(--cancel); }
svg .node rect.under { fill: #cfd8dc; }
svg .node rect.frame { fill: none; stroke-dasharray: 4 3; }
td.child { padding-left: 28px; }
svg .edge { stroke: #90a4ae; stroke-width: 1.2; fill: none; }
.graph { background: #fff; border: 1px solid #e0e0e0; overflow: auto; max-height: 70vh; }
pre.tb { background: #263238; color: #eceff1; padding: 10px; overflow: auto; font-size: 12px; }
.live { font-size: 12px; color: var(--muted); }
"""

SCRIPT = r"""
"use strict";
(function () {
  const page = document.body.dataset.page;
  const statusOf = (el, status, prefix) => {
    for (const c of Array.from(el.classList)) if (c.startsWith(prefix)) el.classList.remove(c);
    el.classList.add(prefix + status);
  };
  const live = document.getElementById("live");
  const say = (text) => { if (live) live.textContent = text; };

  async function refreshRun() {
    const params = new URLSearchParams(location.search);
    const response = await fetch("api/run?" + params.toString(), {cache: "no-store"});
    if (!response.ok) { say("could not refresh (" + response.status + ")"); return true; }
    const detail = await response.json();
    const run = detail.run;
    const badge = document.getElementById("run-status");
    badge.textContent = run.status;
    statusOf(badge, run.status, "s-");
    document.getElementById("run-done").textContent = detail.done;
    document.getElementById("run-duration").textContent = detail.duration;
    for (const task of detail.tasks) {
      const row = document.querySelector('tr[data-task="' + CSS.escape(task.name) + '"]');
      if (row) {
        const cell = row.querySelector(".status");
        cell.textContent = task.status;
        statusOf(cell, task.status, "s-");
        row.querySelector(".attempts").textContent = String(task.attempts);
        row.querySelector(".duration").textContent = task.duration_text;
        row.querySelector(".error").textContent = task.error_text;
      }
      const node = document.querySelector('g.node[data-task="' + CSS.escape(task.name) + '"]');
      if (node) {
        statusOf(node, task.status, "n-");
        const title = node.querySelector("title");
        title.textContent = task.name + ": " + task.status + (task.elements === null ? ""
          : ", mapped task, " + task.elements + " element(s) done");
      }
    }
    const over = run.status !== "running";
    say(over ? "finished" : "live: updated " + new Date().toLocaleTimeString());
    return over;
  }

  async function refreshList() {
    const params = new URLSearchParams(location.search);
    const response = await fetch("api/runs?" + params.toString(), {cache: "no-store"});
    if (!response.ok) { say("could not refresh (" + response.status + ")"); return false; }
    const records = await response.json();
    for (const record of records) {
      const row = document.querySelector('tr[data-run="' + CSS.escape(record.key) + '"]');
      if (!row) continue;
      const cell = row.querySelector(".status");
      cell.textContent = record.status;
      statusOf(cell, record.status, "s-");
      row.querySelector(".done").textContent = record.done;
      row.querySelector(".duration").textContent = record.duration_text;
    }
    say("live: updated " + new Date().toLocaleTimeString());
    return false;
  }

  const every = Number(document.body.dataset.refresh || "1000");
  async function loop() {
    let over = false;
    try { over = await (page === "run" ? refreshRun() : refreshList()); }
    catch (error) { say("could not refresh: " + error); }
    if (!over) setTimeout(loop, every);
  }
  if (document.body.dataset.live === "1") setTimeout(loop, every);
})();
"""
