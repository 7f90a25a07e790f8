"""Stages: the base types, the registry, the built-in stages and tiling.

Importing the package registers the built-in stages (``classic``, ``restore``,
``temporal``), so a YAML ``type:`` resolves through ``pipeline.stages.registry``
whichever module asks first.
"""

from pipeline.stages import classic, restore, temporal  # noqa: F401  (they register themselves)
