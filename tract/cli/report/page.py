"""The report's data made into one self-contained HTML page: no network, no external asset.

Everything in the data came from the log and is untrusted. The verification at the top
is written here, every value through `html.escape`. The rest is drawn in the browser by
the page's own script from the data embedded as JSON, where `<`, `>` and `&` are written
as JSON escapes (so a `</script>` in a message cannot end the data block) and the script
only ever makes text nodes of it. A Content-Security-Policy lets nothing run or load but
the page's own script and style (named by their SHA-256), as a second wall.
"""

from __future__ import annotations

import base64
import hashlib
import json
from html import escape
from importlib.resources import files
from string import Template
from typing import Any

from tract.cli.output import jsonable

_ASSETS = files("tract.cli.report") / "assets"
_JSON_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def render(data: dict[str, Any]) -> str:
    """The page for `collect.collect`'s data."""
    script = _asset("report.js")
    style = _asset("report.css")
    policy = (
        f"default-src 'none'; script-src '{_digest(script)}'; style-src '{_digest(style)}'; img-src data:; "
        "base-uri 'none'; form-action 'none'"
    )
    return Template(_asset("page.html")).substitute(
        policy=policy,
        style=style,
        script=script,
        directory=escape(data["directory"]),
        generated_at=escape(data["generated_at"]),
        version=escape(data["version"]),
        verification=_verification(data["verification"]),
        data=embedded_json(data),
    )


def embedded_json(value: Any) -> str:
    """`value` as JSON that is safe inside a `<script type="application/json">` element: no `<`,
    `>` or `&` (nor the line separators older parsers choke on) appears as itself."""
    return json.dumps(jsonable(value), ensure_ascii=False, separators=(",", ":")).translate(_JSON_ESCAPES)


def _verification(verification: dict[str, Any]) -> str:
    ok = verification["ok"]
    heads = "".join(
        f'<tr><td class="tract-id">{escape(head["tract_id"])}</td><td class="number">{head["position"]}</td>'
        f"<td><code>{escape(head['hash'])}</code></td></tr>"
        for head in verification["heads"]
    )
    problem = verification["problem"]
    detail = ""
    if problem is not None:
        where = (
            f"{problem['tract_id']} position {problem['position']}"
            if problem["tract_id"]
            else f"position {problem['position']}"
        )
        detail = (
            f'<p class="problem">First problem: {escape(problem["kind"])} at {escape(where)}: '
            f"{escape(problem['detail'])}</p>"
        )
    return (
        f'<section id="verification" class="{"ok" if ok else "failed"}" data-ok="{"true" if ok else "false"}">'
        f"<h2>Verification: {'whole and unaltered' if ok else 'FAILED'}</h2>"
        f'<p id="verification-summary">{escape(verification["summary"])}</p>{detail}'
        '<table class="heads"><caption>Chain heads (write one down: <code>tract verify DIR --anchor '
        "TRACT:POSITION:HASH</code> proves later that the tract only grew)</caption>"
        f"<thead><tr><th>tract</th><th>position</th><th>hash</th></tr></thead><tbody>{heads}</tbody></table>"
        "</section>"
    )


def _asset(name: str) -> str:
    return (_ASSETS / name).read_text(encoding="utf-8")


def _digest(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")
