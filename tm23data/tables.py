"""Tables as text, for the command line and reports: one formatter for every ``tm23`` command."""

from __future__ import annotations


def _cell(value) -> str:
    return "-" if value is None else str(value)


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return text == "-"


def text_table(header: list[str], rows: list[list]) -> str:
    """Aligned columns under a dashed rule; a column whose cells are all numbers (or ``-``) is right-aligned."""
    cells = [[_cell(c) for c in r] for r in rows]
    numeric = [bool(cells) and all(_is_number(r[i]) for r in cells) for i in range(len(header))]
    widths = [max(len(r[i]) for r in [header, *cells]) for i in range(len(header))]
    lines = []
    for k, r in enumerate([header, *cells]):
        lines.append("  ".join(c.rjust(w) if num and k else c.ljust(w) for c, w, num in zip(r, widths, numeric)))
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)
