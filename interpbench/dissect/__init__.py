"""Unit dissection (Network / GAN Dissection) and path interventions, for language and vision models.

Modules: :mod:`.stats` (streaming statistics), :mod:`.engine` (two-pass IoU dissection),
:mod:`.labels` (single and compositional labels), :mod:`.text` / :mod:`.text_concepts`
(token concepts), :mod:`.vision` (synthetic scenes, scene CNN, path interventions),
:mod:`.ablate` (unit interventions), :mod:`.run_text` / :mod:`.vision.demo` (runs).
"""
