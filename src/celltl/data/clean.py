"""Remove duplicates found by the audit, and say exactly what was removed."""

from __future__ import annotations

import dataclasses

import numpy as np

from celltl._checks import check_images, check_labels
from celltl.data.audit import DEFAULT_NEAR_THRESHOLD, audit_duplicates

__all__ = ["CleanResult", "clean_duplicates"]


@dataclasses.dataclass(frozen=True, eq=False)
class CleanResult:
    """What :func:`clean_duplicates` kept and dropped.

    Unpacks like a tuple: ``images, labels = clean_duplicates(...)`` works via
    ``result.images, result.labels``; iterate for ``(images, labels)``.

    Attributes:
        images: The kept images.
        labels: Their labels.
        kept: int64 indices (into the input) of the kept images, ascending.
        dropped: int64 indices of the dropped images, ascending.
        reasons: ``{dropped_index: reason}``; the reason is
            ``"cross-class <kind> duplicate of [...]"`` or
            ``"<kind> duplicate of <kept index>"``.
    """

    images: np.ndarray
    labels: np.ndarray
    kept: np.ndarray
    dropped: np.ndarray
    reasons: dict

    def __iter__(self):
        return iter((self.images, self.labels))

    def reindex(self, splits):
        """``splits`` (name -> indices into the input) as indices into the kept images.

        Dropped images leave their split; the rest keep their order. What an
        official train/validation/test split needs after cleaning.

        Args:
            splits: A dict of int index arrays into the images given to
                :func:`clean_duplicates`.

        Returns:
            A dict with the same keys of int64 arrays into :attr:`images`.
        """
        if not isinstance(splits, dict):
            raise ValueError(
                f"`splits` must be a dict of index arrays. Received: splits={splits!r}"
            )
        total = self.kept.size + self.dropped.size
        new_index = -np.ones(total, np.int64)
        new_index[self.kept] = np.arange(self.kept.size)
        out = {}
        for name, idx in splits.items():
            idx = np.asarray(idx, np.int64)
            if idx.size and (idx.min() < 0 or idx.max() >= total):
                raise ValueError(
                    f"`splits[{name!r}]` must index the {total} images that were "
                    f"cleaned. Received: indices from {idx.min()} to {idx.max()}"
                )
            mapped = new_index[idx]
            out[name] = mapped[mapped >= 0]
        return out

    def __str__(self) -> str:
        lines = [f"kept {self.kept.size} images, dropped {self.dropped.size}"]
        lines += [f"  dropped {i}: {self.reasons[i]}" for i in self.dropped[:50]]
        if self.dropped.size > 50:
            lines.append(f"  ... and {self.dropped.size - 50} more")
        return "\n".join(lines)


def clean_duplicates(images, labels, report=None, *, near: bool = True):
    """Drops cross-class duplicates entirely and keeps one copy of the rest.

    A group whose members carry different labels is ambiguous, so all of its
    images are dropped (as the study did with watermark images repeated under
    several classes). In a group with a single label, the lowest index is kept
    and the other copies are dropped. Nothing is dropped silently: the result
    lists every dropped index with its reason.

    Args:
        images: uint8 ``(N, H, W, 3)``.
        labels: Labels ``(N,)``, ``(N, 1)`` or one-hot ``(N, K)``; returned in
            the same form.
        report: A :class:`DuplicateReport` of these images; computed with
            :func:`audit_duplicates` (default threshold) if ``None``.
        near: Also act on near-duplicate groups. If False, only sets of
            identical pixels are cleaned. Defaults to True.

    Returns:
        A :class:`CleanResult`.

    Example:

    >>> import numpy as np
    >>> from celltl.data import audit_duplicates, clean_duplicates
    >>> x = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype="uint8")
    >>> y = np.array([0, 0, 1, 1, 2, 2])
    >>> x[5] = x[0]  # the same picture under classes 0 and 2
    >>> x[3] = x[2]  # an exact copy within class 1
    >>> result = clean_duplicates(x, y, audit_duplicates(x, y))
    >>> print(result)  # what was dropped, and why
    kept 3 images, dropped 3
      dropped 0: cross-class exact duplicate of [5]
      dropped 3: exact duplicate of 2
      dropped 5: cross-class exact duplicate of [0]
    >>> x_clean, y_clean = result
    >>> y_clean.tolist()
    [0, 1, 2]
    """
    x = check_images(images)
    y = check_labels(labels, n=x.shape[0], allow_one_hot=True)
    if report is None:
        report = audit_duplicates(
            x, y, threshold=DEFAULT_NEAR_THRESHOLD if near else None
        )
    if report.n_images != x.shape[0] or not np.array_equal(report.labels, y):
        raise ValueError(
            f"`report` must describe these images and labels; it covers "
            f"{report.n_images} images, received {x.shape[0]} (or labels differ)."
        )
    groups = [(g.kind, g.indices) for g in report.groups if near or g.kind == "exact"]
    if not near:  # split near groups into their identical-pixel sets
        for g in report.near_groups:
            ids = report.pixel_ids[g.indices]
            for pid in np.unique(ids):
                if (ids == pid).sum() > 1:
                    groups.append(("exact", g.indices[ids == pid]))
    reasons = {}
    for kind, members in groups:
        member_labels = y[members]
        if np.unique(member_labels).size > 1:
            for i in members:
                others = [int(j) for j in members if j != i]
                reasons[int(i)] = f"cross-class {kind} duplicate of {others}"
        else:
            for i in members[1:]:
                reasons[int(i)] = f"{kind} duplicate of {int(members[0])}"
    dropped = np.array(sorted(reasons), dtype=np.int64)
    keep_mask = np.ones(x.shape[0], bool)
    keep_mask[dropped] = False
    kept = np.flatnonzero(keep_mask).astype(np.int64)
    out_labels = np.asarray(labels)[kept]
    return CleanResult(x[kept], out_labels, kept, dropped, reasons)
