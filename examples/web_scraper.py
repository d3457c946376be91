"""A web-scraping pipeline: fetch -> parse -> store, with a StatusTracker and a live display.

Run it with ``python examples/web_scraper.py`` (a couple of seconds; ``--help`` for options).
The "web site" is simulated (latencies are ``asyncio.sleep``), so it needs no network.

What it shows:

* three stages with their own worker pools: many fetchers (I/O-bound), a few parsers, and
  storers that share a two-connection "database" (``task_concurrency_limits``): the other
  storers wait for a connection while the fetchers go on;
* ``parse`` is a plain function: it runs on the pipeline's thread pool, not on the event loop;
* retries that tell errors apart: a page that hangs is cancelled after ``task_timeout`` and
  fetched again, a 503 is retried with back-off, a 404 fails at once
  (``RetryPolicy(retry_on=...)``);
* a :class:`StatusTracker` with a retry callback and bounded history;
* ``--display``: the progress line or a compact/detailed/full dashboard on stderr (drawn with
  ``rich`` when it is installed); ``--stream`` feeds the URLs from a generator through
  ``stream()``, whose progress line then has no total.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import re
import sys
from collections import Counter
from dataclasses import dataclass

from flowweaver import (
    Pipeline,
    PipelineResult,
    RetryPolicy,
    Stage,
    StatusTracker,
    TaskEvent,
    TaskTimeoutError,
)

WORDS = ("async", "pipeline", "worker", "queue", "retry", "stage", "item", "tracker", "fetch",
         "parse", "store", "page", "link", "backpressure", "dashboard", "loop")  # fmt: skip


class HTTPError(Exception):
    """An HTTP error answer."""

    def __init__(self, url: str, status: int) -> None:
        super().__init__(f"{url}: HTTP {status}")
        self.url = url
        self.status = status


class ServiceUnavailable(HTTPError):
    """A 5xx answer: worth retrying (a 404 is not)."""


@dataclass(frozen=True)
class Page:
    url: str
    title: str
    links: int
    words: Counter[str]


class FakeSite:
    """Pages ``/page/0`` … with latencies; a few are missing (404), some answer 503 once, some
    hang once (the stage's timeout cancels the request; the next attempt answers)."""

    def __init__(self, pages: int, scale: float, seed: int) -> None:
        rng = random.Random(seed)
        self.scale = scale
        self.latency = [rng.uniform(0.02, 0.08) for _ in range(pages)]
        self.missing = set(rng.sample(range(pages), k=max(1, pages // 20)))
        self.flaky = {i for i in range(pages) if rng.random() < 0.08} - self.missing
        self.hangs = {i for i in range(pages) if rng.random() < 0.05} - self.missing
        self.bodies = [" ".join(rng.choices(WORDS, k=rng.randrange(40, 120))) for _ in range(pages)]
        self.db: dict[str, Page] = {}
        self.connections = 0  # open database connections now…
        self.most_connections = 0  # …and at most

    async def fetch(self, url: str) -> str:
        index = int(url.rsplit("/", 1)[1])
        if index in self.hangs:
            self.hangs.discard(index)  # this request hangs; the next one answers
            await asyncio.sleep(3600)
        await asyncio.sleep(self.latency[index] * self.scale)
        if index in self.missing:
            raise HTTPError(url, 404)
        if index in self.flaky:
            self.flaky.discard(index)
            raise ServiceUnavailable(url, 503)
        links = "".join(f'<a href="/page/{(index * 7 + k) % 1000}">' for k in range(index % 5))
        return f"<!--{url}--><title>Page {index}</title>{links}<p>{self.bodies[index]}</p>"

    async def store(self, page: Page) -> str:
        self.connections += 1
        self.most_connections = max(self.most_connections, self.connections)
        try:
            await asyncio.sleep(0.01 * self.scale)  # one round trip to the database
            self.db[page.url] = page
        finally:
            self.connections -= 1
        return page.url


def parse(html: str) -> Page:
    """CPU work (regular expressions over the page): a plain function, run on the thread pool."""
    url = re.search(r"<!--(.*?)-->", html)
    title = re.search(r"<title>(.*?)</title>", html)
    body = re.search(r"<p>(.*?)</p>", html)
    return Page(
        url=url.group(1) if url else "?",
        title=title.group(1) if title else "",
        links=len(re.findall(r"<a href=", html)),
        words=Counter(body.group(1).split() if body else ()),
    )


def build(site: FakeSite, tracker: StatusTracker, scale: float) -> Pipeline:
    fetch_retries = RetryPolicy(
        retries=2, delay=0.02 * scale, backoff=2.0, retry_on=(TaskTimeoutError, ServiceUnavailable)
    )
    return Pipeline(
        stages=[
            Stage("Fetch", workers=12, tasks=[site.fetch], task_timeout=0.5 * scale,
                  retry_policy=fetch_retries),
            Stage("Parse", workers=3, tasks=[parse]),
            # Four storers, but the database takes two connections at a time.
            Stage("Store", workers=4, tasks=[site.store], task_concurrency_limits={"store": 2}),
        ],
        status_tracker=tracker,
    )  # fmt: skip


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=200, help="pages to scrape (default 200)")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply every latency (default 1.0)"
    )
    parser.add_argument("--seed", type=int, default=3, help="which pages misbehave")
    parser.add_argument(
        "--display",
        choices=["none", "progress", "compact", "detailed", "full"],
        default="compact",
        help="what the run shows on stderr (default compact)",
    )
    parser.add_argument(
        "--stream",
        action="store_true",
        help="feed the URLs from a generator through stream() (only --display progress/none)",
    )
    args = parser.parse_args(argv)
    if args.pages < 1 or args.scale <= 0:
        parser.error("--pages must be >= 1 and --scale > 0")
    if args.stream and args.display not in ("progress", "none"):
        parser.error("--stream shows --display progress or none")
    return args


async def scrape(args: argparse.Namespace) -> int:
    # The summary below lists every failure: keep flowweaver's per-item warnings (which go
    # to stderr when logging is not configured) out of the live display.
    logging.getLogger("flowweaver.pipeline").setLevel(logging.ERROR)
    site = FakeSite(args.pages, args.scale, args.seed)
    retries: Counter[str] = Counter()

    def on_retry(event: TaskEvent) -> None:
        retries[type(event.error).__name__] += 1

    tracker = StatusTracker(on_task_retry=on_retry, max_history=50)
    pipeline = build(site, tracker, args.scale)
    urls = (f"/page/{i}" for i in range(args.pages))  # a generator: no len()

    failed: list[PipelineResult] = []
    if args.stream:
        # Results come in completion order while URLs are still being fed; failures too.
        stream = pipeline.stream(urls, progress=args.display == "progress")
        failed.extend([result async for result in stream if result.is_failure])
    else:
        items = list(urls)
        if args.display == "progress":
            await pipeline.run(items, progress=True)
        elif args.display == "none":
            await pipeline.run(items)
        else:
            await pipeline.run(items, dashboard=args.display)

    summary = pipeline.get_error_summary()
    stats = tracker.get_stats()
    print(f"scraped {args.pages} pages: {len(site.db)} stored, {summary.total_failed} failed")
    for failure in summary.failed_items:
        print(f"  {failure.item_id}: {failure.error_type}: {failure.error} "
              f"(in {failure.stage}, {failure.attempts} attempt(s))")  # fmt: skip
    kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(retries.items())) or "none"
    print(f"retries: {sum(retries.values())} ({kinds})")
    print(f"tracker: {stats['completed']} completed, {stats['failed']} failed")
    print(f"database connections at once: at most {site.most_connections}")
    words: Counter[str] = Counter()
    for page in site.db.values():
        words.update(page.words)
    print("top words: " + ", ".join(f"{w} {n}" for w, n in words.most_common(3)))
    if args.stream:
        print(f"stream() yielded {len(failed)} failures as results with .error")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(scrape(parse_args(sys.argv[1:]))))
