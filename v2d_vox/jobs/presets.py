"""``presets``: the configs shipped with v2d_vox, each with its description."""

from __future__ import annotations

import textwrap

from ..config import preset_descriptions
from ..options import documented


@documented
def presets() -> dict[str, str]:
    """List the presets a ``config`` parameter accepts by name, with what each does."""
    found = preset_descriptions()
    for name, text in found.items():
        print(f"{name}\n{textwrap.indent(textwrap.fill(text, 96), '    ')}")
    return found
