"""Recipe kinds of the dissection area (not registered here; the recipe runner registers them).

``interpbench.recipes.register_recipe_kind("dissect_text", TextDissectConfig)(run_text)`` and
``register_recipe_kind("dissect_vision", VisionDemoConfig)(run_vision)``; the CLI uses the
:class:`RecipeKind` records below directly.
"""

from __future__ import annotations

from ..recipes import RecipeKind
from .run_text import TextDissectConfig, run_text
from .vision.demo import VisionDemoConfig, run_vision

TEXT_KIND = RecipeKind("dissect_text", TextDissectConfig, run_text, (run_text.__doc__ or "").strip())
VISION_KIND = RecipeKind("dissect_vision", VisionDemoConfig, run_vision, (run_vision.__doc__ or "").strip())
