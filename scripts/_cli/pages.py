"""Self-contained HTML pages: a template from ``templates/`` with its data inlined (no network needed to view)."""
from __future__ import annotations

import html
import json
import os
import re
from typing import Any

from xpnet.io.atomic import json_safe, write_text

TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")


def inline_json(data: Any) -> str:
    """``data`` as strict JSON (non-finite floats as null) that is safe inside a ``<script>`` element."""
    return json.dumps(json_safe(data), separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")


def render(template: str, title: str, data: Any = None, **parts: str) -> str:
    """The template ``templates/<template>`` with ``__TITLE__`` (escaped), ``__DATA__`` (``data`` as inline
    JSON) and each ``__NAME__`` of ``parts`` (HTML, as given) filled in."""
    with open(os.path.join(TEMPLATES, template), encoding="utf-8") as f:
        page = f.read()
    fills = {"__TITLE__": html.escape(title), "__DATA__": inline_json(data)}
    fills |= {f"__{k.upper()}__": v for k, v in parts.items()}
    # one pass over the template: what is filled in is never searched for placeholders
    page = re.sub("|".join(re.escape(k) for k in sorted(fills, key=len, reverse=True)), lambda m: fills[m.group(0)], page)
    return page


def write_page(path: str, page: str) -> None:
    """Write ``page`` to ``path`` atomically (creating its folder)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    write_text(path, page)
