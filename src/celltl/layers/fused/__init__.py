"""The fused engine: a whole augmentation policy in a few passes.

See :mod:`celltl.layers.fused.pipeline` for what is fused and the map of
the package's modules; :mod:`celltl.layers.fusion` for the protocol a layer
speaks to be fused.
"""

from celltl.layers.fused.options import FusionOptions
from celltl.layers.fused.pipeline import FusedPipeline, fuse

__all__ = ["FusedPipeline", "FusionOptions", "fuse"]
