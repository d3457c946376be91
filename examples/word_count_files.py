"""Map over a list of files found at run time, then aggregate: a dynamic workflow.

Run it with ``python examples/word_count_files.py [DIRECTORY] [--executor NAME]``. Without a
directory it writes a few sample files to a temporary one. ``list_files`` finds the ``*.txt``
files; ``count_words`` is *mapped* over them — one call per file, each with its own retries
and status, as many at once as the executor runs — and ``summarize`` gets the list of counts,
in file order. A file that cannot be read fails only its own element: the task keeps going
(``allow_failed_elements=True``) and the summary says which ones failed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from flowweaver import DAG, task

SAMPLES = {
    "a.txt": "the quick brown fox jumps over the lazy dog",
    "b.txt": "flowweaver maps a task over every element of a list",
    "c.txt": "one call per file\nwith retries\nand a status each",
    "d.txt": "",
}


def build(folder: Path) -> DAG:
    @task
    def list_files() -> list[str]:
        return sorted(str(path) for path in folder.glob("*.txt"))

    @task(retries=2, delay=0.01)
    def count_words(path: str) -> int:
        return len(Path(path).read_text(encoding="utf-8").split())

    @task
    def summarize(list_files: list[str], count_words: list[int | None]) -> str:
        counted = [(Path(p).name, n) for p, n in zip(list_files, count_words, strict=True)]
        lines = [f"{name}: {n} words" for name, n in counted if n is not None]
        failed = [name for name, n in counted if n is None]
        total = sum(n for _, n in counted if n is not None)
        lines.append(f"{len(counted) - len(failed)} files, {total} words in all")
        if failed:
            lines.append(f"could not read: {', '.join(failed)}")
        return "\n".join(lines)

    with DAG("word_count") as dag:
        words = count_words.map(allow_failed_elements=True)
        list_files >> words >> summarize
        list_files >> summarize
    return dag


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", nargs="?", type=Path)
    parser.add_argument("--executor", default="thread",
                        choices=["sequential", "thread", "async"])  # fmt: skip
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.directory or Path(tmp)
        if args.directory is None:
            for name, text in SAMPLES.items():
                (folder / name).write_text(text, encoding="utf-8")
            (folder / "unreadable.txt").write_bytes(b"\xff\xfe not utf-8 \xff")
        dag = build(folder)
        results = dag.run(args.executor)
        print(results["summarize"])
        run = dag.last_run
        assert run is not None
        record = run.elements("count_words")
        assert record is not None
        print(f"count_words: {record.count('completed')} of {record.total} elements completed, "
              f"{record.attempts} attempts")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
