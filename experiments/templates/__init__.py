"""Jinja2 templates of the machine side's HTML pages (evaluate's and score-humans'
index.html), and the one function that renders them."""
from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def _environment():
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    return Environment(loader=PackageLoader("experiments", "templates"),
                       autoescape=select_autoescape(["html"]), undefined=StrictUndefined,
                       trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


def render(name: str, **context) -> str:
    """Return template ``name`` rendered with ``context`` (values are HTML-escaped unless
    marked safe; tables arrive as pandas' HTML, marked safe by the template)."""
    return _environment().get_template(name).render(**context)
