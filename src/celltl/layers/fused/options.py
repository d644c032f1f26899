"""FusionOptions: the engine's switches, one frozen object per pipeline."""

from __future__ import annotations

import dataclasses

from celltl._checks import check_bool
from celltl.layers.xla_kernels import XLA_KERNELS

__all__ = ["FusionOptions"]


@dataclasses.dataclass(frozen=True)
class FusionOptions:
    """How :class:`~celltl.FusedPipeline` runs a policy (read when it is traced).

    The defaults are the measured fastest; the others are there to compare
    and to test the paths against each other (same images, other schedule).

    Args:
        merge_rounds: run an operation needing the image as it stands that
            is one branch of a two-round :class:`~celltl.RandomChoice`
            (AugMix in ``study_policy``) once for both rounds. Defaults to
            ``True``.
        sparse: a position whose operations at most this share of the
            images is expected to draw (a RandAugment's second operation,
            from the chain's rates and choices) runs on the images that drew
            them only, a padded sub-batch written into the batch; ``0`` runs
            every position on the whole batch, ``math.inf`` every position
            whose images are known on the images that drew it. Defaults to
            ``0.25``.
        in_place: write the results of a sub-batch into a batch the engine
            made itself in place (TensorFlow graphs); ``False`` always
            writes into a copy. Defaults to ``True``.
        xla_kernels: run each stage as an XLA kernel inside TensorFlow
            graphs (``CELLTL_XLA_KERNELS=0`` in the environment turns it off
            for every pipeline). Defaults to ``True``.

    Example:

    >>> from celltl import FusionOptions
    >>> FusionOptions(sparse=0.0).replace(in_place=False).in_place
    False
    """

    merge_rounds: bool = True
    sparse: float = 0.25
    in_place: bool = True
    xla_kernels: bool = True

    def __post_init__(self):
        check_bool("merge_rounds", self.merge_rounds)
        check_bool("in_place", self.in_place)
        check_bool("xla_kernels", self.xla_kernels)
        sparse = self.sparse
        if isinstance(sparse, bool) or not isinstance(sparse, (int, float)) or not sparse >= 0:
            raise ValueError(
                "`sparse` must be a share >= 0 (math.inf for every position). "
                f"Received: sparse={sparse!r}"
            )
        object.__setattr__(self, "sparse", float(sparse))

    @property
    def kernels(self):
        """Whether stages run as XLA kernels (this switch and the environment's)."""
        return self.xla_kernels and XLA_KERNELS

    def replace(self, **changes):
        """A copy with ``changes`` (the same checks)."""
        return dataclasses.replace(self, **changes)

    def get_config(self):
        return dataclasses.asdict(self)
