"""``flowweaver ui`` and ``flowweaver runs``: the server over HTTP, the pages in headless
Chromium (skipped, with the reason, where no Chromium is installed; ``.ci/run`` installs it)."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowweaver import SQLiteStore, Task, ThreadedExecutor, Workflow
from flowweaver._cli import main
from flowweaver._ui import make_server

from .conftest import WAIT

EVIL = "<script>alert(1)</script>"
CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium: install it (apt-get install chromium) to run the browser tests",
)


def ok() -> int:
    return 1


def bad() -> None:
    raise ValueError("disk <full> & more")


def demo_workflow() -> Workflow:
    wf = Workflow("nightly")
    wf.add_task(Task("extract", ok))
    wf.add_task(Task("clean", ok), depends_on=["extract"])
    wf.add_task(Task(EVIL, ok), depends_on=["extract"])
    wf.add_task(Task("load", bad), depends_on=["clean"])
    wf.add_task(Task("report", ok), depends_on=["load", EVIL])
    return wf


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    path = tmp_path / "state.db"
    with SQLiteStore(path) as store:
        with pytest.raises(RuntimeError):
            ThreadedExecutor().execute(
                demo_workflow(), store=store, run_id="r<1>", failure_policy="continue"
            )
        other = Workflow("hourly")
        other.add_task(Task("only", ok))
        ThreadedExecutor().execute(other, store=store, run_id="h1")
    return path


class Served:
    def __init__(self, path: Path) -> None:
        self.store = SQLiteStore(path, read_only=True)
        self.server = make_server(self.store, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def get(self, path: str) -> tuple[int, dict[str, str], str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=WAIT) as response:
                return response.status, dict(response.headers), response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read().decode()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(WAIT)
        self.store.close()


@pytest.fixture
def served(store_path: Path) -> Iterator[Served]:
    server = Served(store_path)
    yield server
    server.close()


def test_the_server_escapes_everything_and_is_read_only(served: Served, store_path: Path) -> None:
    before = store_path.read_bytes()
    status, headers, page = served.get("")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert "r&lt;1&gt;" in page and "r<1>" not in page
    status, _, page = served.get("run?kind=workflow&name=nightly&id=r%3C1%3E")
    assert status == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and EVIL not in page
    assert "disk &lt;full&gt; &amp; more" in page
    assert page.count("<g class='node") == 5
    status, headers, body = served.get("api/run?name=nightly&id=r%3C1%3E")
    assert status == 200 and headers["Content-Type"] == "application/json"
    data = json.loads(body)
    assert {t["name"]: t["status"] for t in data["tasks"]} == {
        "extract": "completed", "clean": "completed", EVIL: "completed", "load": "failed",
        "report": "upstream_failed",
    }  # fmt: skip
    assert served.get("run?name=nightly&id=nope")[:3:2] == (
        404, "no run 'nope' of 'nightly' is recorded in this store",
    )  # fmt: skip
    assert served.get("elsewhere")[0] == 404
    request = urllib.request.Request(served.url, data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=WAIT)
    assert refused.value.code == 405
    refused.value.close()
    assert store_path.read_bytes() == before


def test_runs_list_and_show_print_tables_and_json(
    store_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["runs", "list", str(store_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["started", "kind", "name", "run", "id", "status", "done",
                                "duration", "executor"]  # fmt: skip
    assert [line.split()[3:6] for line in lines[1:]] == [
        ["hourly", "h1", "completed"], ["nightly", "r<1>", "failed"],
    ]  # fmt: skip
    assert main(["runs", "list", str(store_path), "--workflow", "nightly", "--json"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert (record["name"], record["status"], record["counts"]) == (
        "nightly", "failed", {"completed": 3, "failed": 1, "upstream_failed": 1},
    )  # fmt: skip
    assert main(["runs", "show", str(store_path), "nightly", "r<1>"]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert shown[0].startswith("workflow 'nightly' run 'r<1>': failed, started ")
    assert shown[1].split() == ["task", "status", "attempts", "duration", "error"]
    load = next(line for line in shown if line.startswith("load "))
    assert load.split()[:3] == ["load", "failed", "1"]
    assert load.endswith("ValueError: disk <full> & more")
    assert main(["runs", "show", str(store_path), "nightly", "r<1>", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["run"]["run_id"] == "r<1>"
    assert main(["runs", "show", str(store_path), "nightly", "zzz"]) == 2
    assert capsys.readouterr().err == (
        "flowweaver: error: no run 'zzz' of 'nightly' is recorded in this store\n"
    )
    assert main(["runs", "list", str(store_path.with_name("none.db"))]) == 2
    assert capsys.readouterr().err == (
        f"flowweaver: error: no such store: {str(store_path.with_name('none.db'))!r}\n"
    )
    assert not store_path.with_name("none.db").exists()


def test_runs_prune(store_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "prune", str(store_path), "--keep-last", "0", "--workflow", "hourly"]) == 0
    assert capsys.readouterr().out == "removed 1 run(s)\n"
    with SQLiteStore(store_path) as store:
        assert [r.name for r in store.runs()] == ["nightly"]


# -- in a real browser ------------------------------------------------------------------------


def chromium(url: str, *extra: str) -> str:
    """Headless Chromium's DOM of ``url`` after its scripts ran (virtual time: 8 s)."""
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [
                CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
                "--virtual-time-budget=8000", *extra, "--dump-dom", url,
            ],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@needs_chromium
def test_a_browser_shows_the_run_list_and_a_run_page_with_its_graph(served: Served) -> None:
    listing = chromium(served.url)
    assert '<table id="runs">' in listing
    assert listing.count("<tr data-run=") == 2
    page = chromium(served.url + "run?kind=workflow&name=nightly&id=r%3C1%3E")
    assert page.count('<g class="node') == 5  # one node per task
    assert '<g class="node n-failed" data-task="load">' in page
    # The injected name is text in the table and the graph, never an element.
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 2
    assert "<script>alert(1)" not in page


@needs_chromium
def test_a_running_runs_page_changes_status_without_a_reload(tmp_path: Path) -> None:
    path, release = tmp_path / "live.db", threading.Event()

    def waits() -> str:
        assert release.wait(WAIT)
        return "done"

    wf = Workflow("live")
    wf.add_task(Task("first", ok))
    wf.add_task(Task("second", waits), depends_on=["first"])
    store = SQLiteStore(path)
    running = threading.Thread(
        target=lambda: ThreadedExecutor().execute(wf, store=store, run_id="l1"), daemon=True
    )
    running.start()
    served = None
    try:
        with SQLiteStore(path, read_only=True) as reader:
            for _ in range(1000):  # until the run has recorded that it started
                if reader.runs():
                    break
                threading.Event().wait(0.01)
        served = Served(path)
        pages: list[bytes] = []
        answer = served.server.answer

        def answer_then_finish(url: str, query: dict[str, str]) -> tuple[int, str, bytes]:
            if url == "/api/run" and not release.is_set():
                release.set()  # the page is up and polling: let the run end now
                running.join(WAIT)
            status, kind, body = answer(url, query)
            if url == "/run":
                pages.append(body)
            return status, kind, body

        served.server.answer = answer_then_finish  # type: ignore[method-assign, assignment]
        page = chromium(served.url + "run?kind=workflow&name=live&id=l1")
        (served_page,) = pages  # loaded once: what changed, changed in place
        assert b"<span id='run-status' class='badge status s-running'>running</span>" in served_page
        assert '<span id="run-status" class="badge status s-completed">completed</span>' in page
        assert '<g class="node n-completed" data-task="second">' in page
    finally:
        release.set()
        running.join(WAIT)
        if served is not None:
            served.close()
        store.close()


@pytest.mark.skipif(__import__("sys").platform == "win32", reason="SIGINT is POSIX")
def test_flowweaver_ui_serves_on_localhost_until_ctrl_c(store_path: Path) -> None:
    import signal
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "flowweaver", "ui", str(store_path), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith(f"flowweaver ui: serving {store_path} on http://127.0.0.1:")
        url = line.split(" on ", 1)[1].split()[0]
        with urllib.request.urlopen(url, timeout=WAIT) as response:
            assert b"nightly" in response.read()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=WAIT) == 130
    finally:
        proc.kill()
        proc.wait(timeout=WAIT)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_runs_list_reads_a_json_store_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from flowweaver import JSONFileStore

    path = tmp_path / "state.json"
    with JSONFileStore(path, fsync=False) as store:
        wf = Workflow("small")
        wf.add_task(Task("only", ok))
        ThreadedExecutor().execute(wf, store=store, run_id="j1")
    assert main(["runs", "list", str(path), "--json"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert (record["name"], record["run_id"], record["status"]) == ("small", "j1", "completed")
