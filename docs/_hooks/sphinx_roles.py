"""MkDocs hook: Sphinx roles in docstrings become links (or code) on the built pages.

The package's docstrings cross-reference with Sphinx roles (``:class:`~flowweaver.Workflow```),
which mkdocstrings renders as text: ``:class:`` followed by the target in code. This hook runs
on each page's HTML: a role whose target has an anchor on the page (mkdocstrings gives every
documented object the id of its full name) becomes a link to it, any other becomes plain code.
``~`` shows only the last name, as Sphinx does; functions and methods get ``()``.
"""

from __future__ import annotations

import re
from typing import Any

_ROLE = re.compile(
    r":(?:py:)?(class|meth|func|attr|mod|exc|data|obj|const):<code>(~?)([^<]+)</code>"
)
_ID = re.compile(r'\bid="([A-Za-z_][\w.]*)"')


def on_page_content(html: str, **kwargs: Any) -> str:
    anchors = set(_ID.findall(html))

    def replace(match: re.Match[str]) -> str:
        role, short, target = match.groups()
        target = target.strip()
        shown = target.rsplit(".", 1)[-1] if short else target
        if role in ("meth", "func") and not shown.endswith(")"):
            shown += "()"
        for anchor in (target, f"flowweaver.{target}"):
            if anchor in anchors:
                return f'<a href="#{anchor}"><code>{shown}</code></a>'
        return f"<code>{shown}</code>"

    return _ROLE.sub(replace, html)
