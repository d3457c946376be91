"""``flowweaver ui``: a small, read-only, live web view of a store's run history (stdlib only).

Design:

* **Standard library only**: ``http.server.ThreadingHTTPServer``; the stylesheet and the
  script are served from the package (:mod:`flowweaver._ui_assets`), so the pages work
  offline. Pages are rendered on the server; the script then refreshes a page that is still
  live by fetching its JSON (``/api/runs``, ``/api/run``) every second and updating statuses
  in place — no reload.
* **Read-only.** The store is opened read-only (SQLite ``mode=ro``); the server answers
  ``GET``/``HEAD`` only. It binds to ``127.0.0.1`` unless told otherwise.
* **Escaping.** Every string from the store (names, run ids, errors, tracebacks, item ids)
  goes through :func:`html.escape` on the server; the script only sets ``textContent``. The
  ``Content-Security-Policy`` allows scripts from the server itself only, so even a string
  that escaped escaping could not run.
* **Graph**: the run's tasks as an SVG, one column per layer of the execution plan (a task's
  column is one after its deepest dependency), coloured by status; edges from each
  dependency. Graphs above :data:`MAX_NODES` tasks are not drawn (the table still lists them).
"""

from __future__ import annotations

import html
import json
import logging
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from ._cli_runs import describe, done_count, format_duration, format_time
from ._errors import UnknownRunError
from ._history import RunKind, RunStatus
from ._history_read import RunHistory
from ._ui_assets import SCRIPT, STYLE

if TYPE_CHECKING:
    from ._history import RunDetail, RunRecord
    from ._store import StateStore

__all__ = ["MAX_NODES", "make_server", "serve"]

logger = logging.getLogger("flowweaver.ui")

#: Largest graph drawn as SVG.
MAX_NODES = 1000
#: Runs on the list page unless ``?limit=`` says otherwise.
LIST_LIMIT = 200
_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'"
_NODE_W, _NODE_H, _GAP_X, _GAP_Y = 170, 34, 60, 16


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _key(record: RunRecord) -> str:
    return json.dumps([record.kind.value, record.name, record.run_id])


def _run_link(record: RunRecord) -> str:
    query = urllib.parse.urlencode({"kind": record.kind.value, "name": record.name,
                                    "id": record.run_id})  # fmt: skip
    return "run?" + query


def _page(title: str, body: str, page: str, live: bool) -> bytes:
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_e(title)} · flowweaver</title>"
        "<link rel='stylesheet' href='static/app.css'></head>"
        f"<body data-page='{page}' data-live='{int(live)}' data-refresh='1000'>"
        "<header><a href='./'>flowweaver runs</a></header>"
        f"<main>{body}</main><script src='static/app.js'></script></body></html>"
    ).encode()


def _badge(status: str, element_id: str = "") -> str:
    ident = f" id='{element_id}'" if element_id else ""
    return f"<span{ident} class='badge status s-{_e(status)}'>{_e(status)}</span>"


def list_json(records: list[RunRecord]) -> list[dict[str, Any]]:
    return [
        {**r.to_json(), "key": _key(r), "done": done_count(r),
         "duration_text": format_duration(r.duration)}
        for r in records
    ]  # fmt: skip


def render_list(records: list[RunRecord], store: str) -> bytes:
    rows = [
        (
            f"<tr data-run='{_e(_key(r))}'><td>{_e(format_time(r.started_at))}</td>"
            f"<td>{_e(r.kind.value)}</td><td><a href='{_e(_run_link(r))}'>{_e(r.name)}</a></td>"
            f"<td><a href='{_e(_run_link(r))}'>{_e(r.run_id)}</a></td>"
            f"<td>{_badge(r.status.value)}</td><td class='num done'>{_e(done_count(r))}</td>"
            f"<td class='num duration'>{_e(format_duration(r.duration))}</td>"
            f"<td>{_e(r.executor)}</td><td class='muted'>{_e(r.error or '')}</td></tr>"
        )
        for r in records
    ]
    table = (
        "<table id='runs'><thead><tr><th>started</th><th>kind</th><th>name</th><th>run id</th>"
        "<th>status</th><th>done</th><th>duration</th><th>executor</th><th>first error</th>"
        "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
        if rows
        else "<p class='muted'>No runs recorded yet.</p>"
    )
    live = any(r.status is RunStatus.RUNNING for r in records)
    body = (
        f"<h1>Runs <span class='muted'>in {_e(store)}</span></h1>"
        f"<p id='live' class='live'>{'live' if live else ''}</p>{table}"
    )
    return _page("Runs", body, "list", live)


def detail_json(detail: RunDetail) -> dict[str, Any]:
    data = detail.to_json()
    data["done"] = done_count(detail.run)
    data["duration"] = format_duration(detail.run.duration)
    for task in data["tasks"]:
        task["duration_text"] = format_duration(task["duration"])
        task["error_text"] = f"{task['error_type']}: {task['error']}" if task["error_type"] else ""
    return data


def render_graph(detail: RunDetail) -> str:
    """The run's graph as SVG: columns by plan layer, rows in definition order."""
    statuses = {t.name: t.status for t in detail.tasks}
    elements = {t.name: t.elements for t in detail.tasks if t.elements is not None}
    subflows = {t.name: t.subflow for t in detail.tasks if t.subflow is not None}
    where: dict[str, tuple[int, int]] = {}
    for column, layer in enumerate(detail.layers):
        for row, task in enumerate(layer):
            where[task] = (column * (_NODE_W + _GAP_X) + 10, row * (_NODE_H + _GAP_Y) + 10)
    width = max((x for x, _ in where.values()), default=0) + _NODE_W + 20
    height = max((y for _, y in where.values()), default=0) + _NODE_H + 20
    edges, nodes = [], []
    for task, deps in detail.dependencies.items():
        x2, y2 = where[task]
        for dep in deps:
            if dep in where:
                x1, y1 = where[dep]
                a, b = x1 + _NODE_W, y1 + _NODE_H // 2
                c, d = x2, y2 + _NODE_H // 2
                mid = (a + c) // 2
                edges.append(f"<path class='edge' d='M{a},{b} C{mid},{b} {mid},{d} {c},{d}'/>")
    for task, (x, y) in where.items():
        status = statuses.get(task, "unknown")
        label = task if len(task) <= 22 else task[:21] + "…"
        count = elements.get(task)
        # A mapped task is drawn as a stack of cards, with its committed elements counted.
        stack = "" if count is None else (
            f"<rect class='under' x='{x + 6}' y='{y - 5}' width='{_NODE_W}' height='{_NODE_H}'/>"
        )  # fmt: skip
        label = label if count is None else f"{label[:16]} \u00d7{count}"
        kind = "node mapped" if count is not None else "node"
        opened = subflows.get(task)
        if opened is not None:  # a subflow: a framed node, its child run's size in the label
            kind += " subflow"
            label = f"{label[:15]} \u2283{opened}"
            stack = (
                f"<rect class='frame' x='{x - 4}' y='{y - 4}' width='{_NODE_W + 8}' "
                f"height='{_NODE_H + 8}'/>"
            )
        nodes.append(
            f"<g class='{kind} n-{_e(status)}' data-task='{_e(task)}'>"
            f"<title>{_e(task)}: {_e(status)}"
            + ("" if count is None else f", mapped task, {count} element(s) done")
            + f"</title>{stack}<rect x='{x}' y='{y}' width='{_NODE_W}' height='{_NODE_H}'/>"
            f"<text x='{x + 10}' y='{y + 21}'>{_e(label)}</text></g>"
        )
    return (
        f"<svg id='graph' xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' role='img' aria-label='task graph'>"
        + "".join(edges) + "".join(nodes) + "</svg>"
    )  # fmt: skip


def render_run(detail: RunDetail) -> bytes:
    run = detail.run
    first = "task" if run.kind is RunKind.WORKFLOW else "item"
    facts = (
        f"<p>{_e(run.kind.value)} {_badge(run.status.value, 'run-status')} "
        f"started {_e(format_time(run.started_at))} · done <span id='run-done'>"
        f"{_e(done_count(run))}</span> · took <span id='run-duration'>"
        f"{_e(format_duration(run.duration))}</span>"
        + (f" · on {_e(run.executor)}" if run.executor else "")
        + (f" · resumed {run.resumes} time(s)" if run.resumes else "")
        + (f" · flowweaver {_e(run.version)}" if run.version else "")
        + "</p><p id='live' class='live'></p>"
    )
    parts = [f"<h1>{_e(run.name)} <span class='muted'>run {_e(run.run_id)}</span></h1>", facts]
    if run.kind is RunKind.WORKFLOW:
        if len(detail.dependencies) <= MAX_NODES:
            parts.append("<h2>Graph</h2><div class='graph'>" + render_graph(detail) + "</div>")
        else:
            parts.append(f"<p class='muted'>The graph has {len(detail.dependencies)} tasks; "
                         f"graphs above {MAX_NODES} are not drawn.</p>")  # fmt: skip
    if detail.stages:
        rows = "".join(
            f"<tr><td>{_e(s.name)}</td><td class='num'>{s.workers}</td>"
            f"<td class='num'>{s.processed}</td><td class='num'>{s.failed}</td></tr>"
            for s in detail.stages
        )
        parts.append(
            "<h2>Stages</h2><table id='stages'><thead><tr><th>stage</th><th>workers</th>"
            f"<th>processed</th><th>failed</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    task_rows = []
    for t in detail.tasks:
        error = f"{t.error_type}: {t.error}" if t.error_type else ""
        reused = f" <span class='muted'>({_e(t.reused)})</span>" if t.reused else ""
        if t.elements is not None:
            reused += f" <span class='muted'>(mapped: {t.elements} element(s) done)</span>"
        if t.subflow is not None:
            reused += f" <span class='muted'>(subflow: {t.subflow} task(s))</span>"
        task_rows.append(
            f"<tr data-task='{_e(t.name)}'><td{' class=child' if t.parent else ''}>"
            f"{_e(t.name)}{reused}</td>"
            f"<td><span class='badge status s-{_e(t.status)}'>{_e(t.status)}</span></td>"
            f"<td class='num attempts'>{t.attempts}</td>"
            f"<td class='num duration'>{_e(format_duration(t.duration))}</td>"
            f"<td>{_e(t.stage or '')}</td><td class='error'>{_e(error)}</td></tr>"
        )
    parts.append(
        f"<h2>{first.title()}s</h2><table id='tasks'><thead><tr><th>{first}</th><th>status</th>"
        "<th>attempts</th><th>duration</th><th>stage</th><th>error</th></tr></thead><tbody>"
        + "".join(task_rows) + "</tbody></table>"
    )  # fmt: skip
    failures = [t for t in detail.tasks if t.traceback]
    if failures:
        parts.append("<h2>Failures</h2>")
        parts += [f"<h3>{_e(t.name)}</h3><pre class='tb'>{_e(t.traceback)}</pre>" for t in failures]
    return _page(f"{run.name} {run.run_id}", "".join(parts), "run", not run.status.is_over)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "flowweaver-ui"

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)

    def do_HEAD(self) -> None:
        self.do_GET(head=True)

    def do_GET(self, head: bool = False) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
        try:
            status, kind, body = self.server.answer(url.path, query)
        except Exception:  # a broken store must not kill the server: say so, keep serving
            logger.exception("flowweaver ui: cannot answer %r", self.path)
            status, kind, body = 500, "text/plain; charset=utf-8", b"cannot read the store"
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Security-Policy", _CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _refuse(self) -> None:
        self.send_error(405, "the web view is read-only")

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], store: StateStore, label: str) -> None:
        super().__init__(address, _Handler)
        self.history = RunHistory(store)
        self.label = label
        self.lock = threading.Lock()  # one store read at a time

    def answer(self, path: str, query: dict[str, str]) -> tuple[int, str, bytes]:
        text, js, page = "text/plain; charset=utf-8", "application/json", "text/html; charset=utf-8"
        if path == "/static/app.css":
            return 200, "text/css; charset=utf-8", STYLE.encode()
        if path == "/static/app.js":
            return 200, "text/javascript; charset=utf-8", SCRIPT.encode()
        if path in ("/", "/api/runs"):
            try:
                limit = int(query.get("limit", LIST_LIMIT))
            except ValueError:
                return 400, text, b"limit must be an integer"
            with self.lock:
                records = self.history.runs(query.get("name"), limit=max(limit, 0) or None)
            if path == "/":
                return 200, page, render_list(records, self.label)
            return 200, js, json.dumps(list_json(records)).encode()
        if path in ("/run", "/api/run", "/api/run.txt"):
            name, run_id = query.get("name"), query.get("id")
            if name is None or run_id is None:
                return 400, text, b"name= and id= are required"
            kind = query.get("kind")
            try:
                with self.lock:
                    detail = self.history.run(
                        name, run_id, kind=kind if kind in ("workflow", "pipeline") else None
                    )
            except UnknownRunError as error:
                return 404, text, str(error).encode()
            if path == "/run":
                return 200, page, render_run(detail)
            if path == "/api/run.txt":
                return 200, text, describe(detail, tracebacks=True).encode()
            return 200, js, json.dumps(detail_json(detail)).encode()
        return 404, text, b"not found"


def make_server(store: StateStore, host: str = "127.0.0.1", port: int = 8321) -> _Server:
    """A server for ``store`` bound to ``host:port`` (port 0: any free port); not started."""
    return _Server((host, port), store, str(getattr(store, "path", store)))


def serve(store: StateStore, host: str, port: int) -> int:
    """Serve until Ctrl-C (the CLI's ``flowweaver ui``); the exit status."""
    try:
        server = make_server(store, host, port)
    except OSError as error:
        reason = error.strerror or str(error)
        print(f"flowweaver: error: cannot listen on {host}:{port}: {reason}", file=sys.stderr)
        return 2
    with server:
        bound_host, bound_port = str(server.server_address[0]), server.server_address[1]
        print(f"flowweaver ui: serving {server.label} on http://{bound_host}:{bound_port}/ "
              "(read-only; Ctrl-C stops)", flush=True)  # fmt: skip
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            return 130
    return 0
