"""The page's blocks as markdown or HTML (every text escaped for its format)."""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence

from ffbench.report.page import Block, Bullets, Heading, Image, Table
from ffbench.text import printable


def _md_text(text: str) -> str:
    """Text from the results as markdown shows it, literally: control characters as escapes
    (\\x1b), and <, > and & as entities (a viewer renders raw HTML: `<script>` would run)."""
    return html.escape(printable(text), quote=False)


def _md_cell(text: str) -> str:
    return _md_text(text).replace("|", "\\|").replace("\n", " ")


def _md_block(block: Block) -> str:
    if isinstance(block, Heading):
        return f"{'#' * block.level} {_md_text(block.text)}"
    if isinstance(block, Bullets):
        return "\n".join(f"- {_md_text(item)}" for item in block.items)
    if isinstance(block, Table):
        lines = ["| " + " | ".join(map(_md_cell, block.columns)) + " |",
                 "|" + "---|" * len(block.columns)]
        lines += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in block.rows]
        return "\n".join(lines)
    if isinstance(block, Image):
        return f"![{_md_text(block.alt)}]({block.path})"
    return _md_text(block.text)


def to_markdown(blocks: Sequence[Block]) -> str:
    return "\n\n".join(map(_md_block, blocks)) + "\n"


def _html_block(block: Block) -> str:
    def e(text: str) -> str:
        return html.escape(printable(text))

    if isinstance(block, Heading):
        return f"<h{block.level}>{e(block.text)}</h{block.level}>"
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{e(item)}</li>" for item in block.items) + "</ul>"
    if isinstance(block, Table):
        head = "".join(f"<th>{e(c)}</th>" for c in block.columns)
        body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>"
                       for row in block.rows)
        return f"<table><tr>{head}</tr>{body}</table>"
    if isinstance(block, Image):
        return f'<figure><img src="{e(block.path)}" alt="{e(block.alt)}"></figure>'
    return f"<p>{e(block.text)}</p>"


HTML_STYLE = (
    "body{font-family:sans-serif;max-width:70em;margin:2em auto;}"
    "table{border-collapse:collapse;font-size:90%;}td,th{border:1px solid #ccc;padding:2px 6px;}"
    "img{max-width:100%;}"
)


def to_html(blocks: Sequence[Block]) -> str:
    body = "\n".join(map(_html_block, blocks))
    return (f"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>ffbench report</title>"
            f"<style>{HTML_STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")


RENDERERS: dict[str, Callable[[Sequence[Block]], str]] = {".md": to_markdown, ".html": to_html}
