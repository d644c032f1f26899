"""RobustnessReport: the result of :func:`~celltl.robustness.evaluate_robustness`."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from celltl._checks import check_choice
from celltl.robustness._corrupting import _METRICS, _example_severity, _example_strip

__all__ = ["RobustnessReport"]

def _ratio(num: float, den: float) -> float:
    return float(num / den) if den != 0 else math.nan


def _json_float(x):
    return None if x is None or not math.isfinite(x) else float(x)


def _json_safe(obj):
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return _json_float(float(obj))
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _table_of(reference) -> tuple[float, dict]:
    """``(clean, {name: [values]})`` of a report or a dict from ``to_dict``."""
    if isinstance(reference, RobustnessReport):
        return reference.clean_accuracy, reference.accuracy
    if isinstance(reference, dict) and "clean_accuracy" in reference and isinstance(
        reference.get("accuracy"), dict
    ):
        return float(reference["clean_accuracy"]), {
            str(k): [float(v) for v in vals]
            for k, vals in reference["accuracy"].items()
        }
    raise ValueError(
        "`reference` must be a RobustnessReport or a dict with 'clean_accuracy' "
        "and 'accuracy' ({corruption: [value per severity]}). "
        f"Received: reference={reference!r:.200}"
    )


@dataclasses.dataclass(frozen=True, eq=False)
class RobustnessReport:
    """Accuracy under each corruption and severity; print it or save a plot.

    The summaries, with ``A[c][s]`` the metric (accuracy, or balanced
    accuracy: the mean of the per-class recalls, as in MedMNIST-C) under
    corruption ``c`` at severity ``s``, ``A_clean`` the clean metric and
    ``E = 1 - A`` the error:

    * :attr:`mean_corrupted_accuracy`: the mean of ``A[c][s]`` over the whole
      table; :attr:`mean_error` is ``1 - mean_corrupted_accuracy``.
    * :attr:`relative_drop`: ``1 - mean_corrupted_accuracy / A_clean``, the
      share of the clean accuracy lost under corruption.
    * :attr:`corruption_error` (ImageNet-C's CE), against a reference model
      ``ref`` evaluated on the same corruptions and severities:
      ``CE[c] = sum_s E[c][s] / sum_s E_ref[c][s]``; :attr:`mce` is the mean
      of ``CE[c]`` over the corruptions.
    * :attr:`relative_corruption_error` (ImageNet-C's relative CE):
      ``rCE[c] = sum_s (E[c][s] - E_clean) / sum_s (E_ref[c][s] -
      E_ref_clean)``, the degradation relative to the reference's
      degradation; :attr:`relative_mce` is its mean.

    A CE of 1 means as robust as the reference; below 1 is better. A ratio
    whose denominator is 0 is ``nan`` (``None`` in :meth:`to_dict`).
    MedMNIST-C computes the same CE and relative CE with balanced accuracy
    (``metric="balanced_accuracy"``) and a ResNet-18 baseline as the
    reference; compare with published numbers only under the same metric,
    severities and a similar reference.

    Attributes:
        clean_accuracy: The metric on the uncorrupted images.
        accuracy: ``{corruption: [metric at each severity]}``.
        severities: The severities of the columns of ``accuracy``.
        metric: ``"accuracy"`` or ``"balanced_accuracy"``.
        n_images: Images evaluated.
        seed: Seed of the corruptions.
        value_range: Pixel range of the evaluated images.
        reference: ``None`` or ``{"clean_accuracy", "accuracy"}`` of the
            reference model that the corruption errors are normalised by.
        examples: ``None`` or uint8 ``(1 + C, H, W, 3)``: one evaluated cell,
            clean, then under each corruption at :attr:`example_severity`
            (drawn by :meth:`save_plot`; left out of :meth:`to_dict`).

    References:
        Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to
        Common Corruptions and Perturbations", ICLR 2019 (ImageNet-C).
        Di Salvo et al., "MedMNIST-C: Comprehensive benchmark and improved
        classifier robustness by simulating realistic image corruptions",
        2024.

    Example:

    >>> from celltl.robustness import RobustnessReport
    >>> r = RobustnessReport(0.9, {"jpeg": [0.8, 0.6], "gamma": [0.9, 0.7]}, (1, 2))
    >>> round(r.mean_corrupted_accuracy, 3), r.worst_corruption
    (0.75, 'jpeg')
    >>> ref = RobustnessReport(0.9, {"jpeg": [0.6, 0.4], "gamma": [0.8, 0.6]}, (1, 2))
    >>> round(r.with_reference(ref).mce, 3)  # (0.6/1.0 + 0.4/0.6) / 2
    0.633
    """

    clean_accuracy: float
    accuracy: dict
    severities: tuple = (1, 2, 3, 4, 5)
    metric: str = "accuracy"
    n_images: int = 0
    seed: int | None = 0
    value_range: tuple = (0, 255)
    reference: dict | None = None
    examples: np.ndarray | None = dataclasses.field(default=None, repr=False)

    def __post_init__(self):
        sev = tuple(int(s) for s in self.severities)
        table = {str(c): [float(v) for v in vals] for c, vals in self.accuracy.items()}
        for c, vals in table.items():
            if len(vals) != len(sev):
                raise ValueError(
                    f"`accuracy` must hold one value per severity {sev}. "
                    f"Received: accuracy[{c!r}]={vals}"
                )
        if not table:
            raise ValueError(
                f"`accuracy` must not be empty. Received: accuracy={table}"
            )
        check_choice("metric", self.metric, _METRICS)
        object.__setattr__(self, "severities", sev)
        object.__setattr__(self, "accuracy", table)
        object.__setattr__(self, "clean_accuracy", float(self.clean_accuracy))
        object.__setattr__(self, "value_range", tuple(self.value_range))
        if self.reference is not None:
            clean, ref = _table_of(self.reference)
            for c in table:
                if len(ref.get(c, ())) != len(sev):
                    raise ValueError(
                        f"`reference` must have {len(sev)} values (severities "
                        f"{sev}) for every corruption of the report. Received: "
                        f"{c!r}: {ref.get(c)}"
                    )
            ref = {c: ref[c] for c in table}
            ref = {"clean_accuracy": clean, "accuracy": ref}
            object.__setattr__(self, "reference", ref)

    # -- summaries -------------------------------------------------------------
    @property
    def corruptions(self) -> tuple:
        """The corruption names, in table order."""
        return tuple(self.accuracy)

    @property
    def mean_accuracy(self) -> dict:
        """``{corruption: mean over severities}``."""
        return {c: float(np.mean(v)) for c, v in self.accuracy.items()}

    @property
    def mean_corrupted_accuracy(self) -> float:
        """The mean of the whole corruption x severity table."""
        return float(np.mean(list(self.accuracy.values())))

    @property
    def worst_corruption(self) -> str:
        """The corruption with the lowest mean (the first of equals)."""
        means = self.mean_accuracy
        return min(means, key=means.get)

    @property
    def mean_error(self) -> float:
        """``1 - mean_corrupted_accuracy``."""
        return 1.0 - self.mean_corrupted_accuracy

    @property
    def relative_drop(self) -> float:
        """``1 - mean_corrupted_accuracy / clean_accuracy`` (``nan`` if clean is 0)."""
        return 1.0 - _ratio(self.mean_corrupted_accuracy, self.clean_accuracy)

    @property
    def corruption_error(self) -> dict | None:
        """``{c: CE_c}`` against :attr:`reference`; ``None`` without one."""
        if self.reference is None:
            return None
        ref = self.reference["accuracy"]
        return {
            c: _ratio(sum(1 - a for a in v), sum(1 - a for a in ref[c]))
            for c, v in self.accuracy.items()
        }

    @property
    def relative_corruption_error(self) -> dict | None:
        """``{c: rCE_c}`` against :attr:`reference`; ``None`` without one."""
        if self.reference is None:
            return None
        ref, ref_clean = self.reference["accuracy"], self.reference["clean_accuracy"]
        return {
            c: _ratio(
                sum(self.clean_accuracy - a for a in v),
                sum(ref_clean - a for a in ref[c]),
            )
            for c, v in self.accuracy.items()
        }

    @property
    def mce(self) -> float | None:
        """Mean corruption error (mean of :attr:`corruption_error`), or ``None``."""
        ce = self.corruption_error
        return None if ce is None else float(np.mean(list(ce.values())))

    @property
    def relative_mce(self) -> float | None:
        """Mean of :attr:`relative_corruption_error`, or ``None``."""
        rce = self.relative_corruption_error
        return None if rce is None else float(np.mean(list(rce.values())))

    @property
    def example_severity(self) -> int:
        """The severity shown in the example strip: the one closest to 3."""
        return _example_severity(self.severities)

    def with_reference(self, reference) -> RobustnessReport:
        """A copy normalised by ``reference`` (a report or a ``to_dict`` dict)."""
        clean, table = _table_of(reference)
        if isinstance(reference, RobustnessReport):
            metric = reference.metric
        else:
            metric = reference.get("metric", self.metric)
        if metric != self.metric:
            raise ValueError(
                f"`reference` must use metric={self.metric!r}. "
                f"Received: reference metric={metric!r}"
            )
        ref = {"clean_accuracy": clean, "accuracy": table}
        return dataclasses.replace(self, reference=ref)

    # -- export ----------------------------------------------------------------
    def to_dict(self) -> dict:
        """A JSON-safe dict (``nan`` becomes ``None``); inverse of :meth:`from_dict`."""
        return _json_safe(
            {
                "metric": self.metric,
                "n_images": int(self.n_images),
                "seed": self.seed,
                "value_range": list(self.value_range),
                "severities": list(self.severities),
                "clean_accuracy": self.clean_accuracy,
                "accuracy": self.accuracy,
                "mean_accuracy": self.mean_accuracy,
                "mean_corrupted_accuracy": self.mean_corrupted_accuracy,
                "worst_corruption": self.worst_corruption,
                "mean_error": self.mean_error,
                "relative_drop": self.relative_drop,
                "corruption_error": self.corruption_error,
                "relative_corruption_error": self.relative_corruption_error,
                "mce": self.mce,
                "relative_mce": self.relative_mce,
                "reference": self.reference,
            }
        )

    @classmethod
    def from_dict(cls, data: dict) -> RobustnessReport:
        """Rebuilds a report from :meth:`to_dict` (summaries are recomputed)."""
        return cls(
            clean_accuracy=data["clean_accuracy"],
            accuracy=data["accuracy"],
            severities=tuple(data.get("severities", (1, 2, 3, 4, 5))),
            metric=data.get("metric", "accuracy"),
            n_images=int(data.get("n_images", 0)),
            seed=data.get("seed"),
            value_range=tuple(data.get("value_range", (0, 255))),
            reference=data.get("reference"),
        )

    def to_markdown(self) -> str:
        """A corruption x severity table with a mean column, and summary lines."""
        ce, rce = self.corruption_error, self.relative_corruption_error
        head = ["corruption", *(f"s{s}" for s in self.severities), "mean"]
        if ce is not None:
            head += ["CE", "rCE"]
        out = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
        means = self.mean_accuracy
        for c, vals in self.accuracy.items():
            row = [c, *(f"{v:.3f}" for v in vals), f"{means[c]:.3f}"]
            if ce is not None:
                row += [f"{ce[c]:.3f}", f"{rce[c]:.3f}"]
            out.append("| " + " | ".join(row) + " |")
        name = self.metric.replace("_", " ")
        out += [
            "",
            f"- clean {name}: {self.clean_accuracy:.3f} ({self.n_images} images)",
            f"- mean corrupted {name}: {self.mean_corrupted_accuracy:.3f}",
            f"- relative drop: {self.relative_drop:.1%}",
            f"- worst corruption: {self.worst_corruption} "
            f"({means[self.worst_corruption]:.3f})",
        ]
        if ce is not None:
            out.append(f"- mCE: {self.mce:.3f}, relative mCE: {self.relative_mce:.3f}")
        return "\n".join(out) + "\n"

    def __str__(self) -> str:
        return self.to_markdown()

    def save_plot(self, path, images=None):
        """Writes a PNG heat map (corruption x severity) beside example cells.

        The strip on the right shows one cell under each corruption at
        :attr:`example_severity`: the report's :attr:`examples`, or, when
        ``images`` is given, its first image corrupted afresh.

        Args:
            path: Output ``.png`` path.
            images: Optional images in :attr:`value_range`; the first is shown.

        Returns:
            ``path``.
        """
        examples = self.examples
        if images is not None:
            examples = _example_strip(
                images[:1], self.corruptions, self.example_severity,
                seed=self.seed, value_range=self.value_range,
            )
        return _draw(self, path, examples)


def _draw(report, path, examples):
    """The heat map (left) and the example strip (right), with Matplotlib/Agg."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names, sev = report.corruptions, report.severities
    table = np.array([report.accuracy[c] for c in names])
    rows = len(names)
    strip = examples is not None and len(examples) == rows + 1
    width = 2.6 + 0.7 * len(sev) + (1.6 if strip else 0)
    fig = Figure(figsize=(width, 1.2 + 0.42 * rows), dpi=100)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(
        1, 2 if strip else 1, width_ratios=[len(sev), 1.4] if strip else None,
        wspace=0.05,
    )
    ax = fig.add_subplot(grid[0, 0])
    im = ax.imshow(table, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    for (i, j), v in np.ndenumerate(table):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8,
                color="black" if v > 0.6 else "white")
    ax.set_xticks(range(len(sev)), [str(s) for s in sev])
    ax.set_yticks(range(rows), names, fontsize=8)
    ax.set_xlabel("severity")
    name = report.metric.replace("_", " ")
    ax.set_title(
        f"clean {name} {report.clean_accuracy:.3f}, "
        f"mean corrupted {report.mean_corrupted_accuracy:.3f}", fontsize=9,
    )
    fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02 if strip else 0.04)
    if strip:
        cells = grid[0, 1].subgridspec(rows, 1, hspace=0.08)
        for i in range(rows):
            cell_ax = fig.add_subplot(cells[i, 0])
            cell_ax.imshow(examples[1 + i], interpolation="nearest")
            cell_ax.set_axis_off()
            if i == 0:
                cell_ax.set_title(f"severity {report.example_severity}", fontsize=8)
    fig.savefig(path, format="png", bbox_inches="tight")
    return path
