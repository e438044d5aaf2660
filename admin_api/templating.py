"""The Jinja2 templates of the pages, every one autoescaped whatever its file name."""

from __future__ import annotations

from pathlib import Path

import jinja2
from fastapi.templating import Jinja2Templates

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
    # Always on (not by extension): every value a page shows may come from a stranger.
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)

templates = Jinja2Templates(env=_env)
