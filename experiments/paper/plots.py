"""The paper table's plots: one panel per task, dev means (points) +- std over seeds (error bars), saved as
PNG beside README.md (table.png, low-data.png)."""

from __future__ import annotations

from pathlib import Path

from experiments.paper.cells import LOW_DATA_METHODS, METHODS
from raykd.files import atomic_savefig
from raykd.tasks import get_task


def plot(tasks: list[str], numbers: dict, path: Path) -> bool:
    """The table as one panel per task, saved as PNG at `path`: each method's dev mean (points) +- std over
    seeds (error bars), the teacher as a dashed line with its std as a band. Each panel has its own y-axis
    and no zero baseline, because the methods differ by 1-3 points on scales (Matthews ~20, F1 ~85) that bars
    from zero would flatten; an unfinished cell is left out, not drawn at zero. False when no cell is finished."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def done(r):
        return r and r["dev_mean"] is not None

    methods = [*METHODS, "search"]
    if not any(done(numbers.get((t, m))) for t in tasks for m in ["teacher", *methods]):
        return False
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.2 * len(tasks) + 0.5, 3.6), squeeze=False)
    for ax, t in zip(axes[0], tasks):
        for i, m in enumerate(methods):
            r = numbers.get((t, m))
            if done(r):
                ax.errorbar(i, 100 * r["dev_mean"], yerr=100 * (r["dev_std"] or 0), fmt="o", capsize=3, color=f"C{i + 1}")
        teacher = numbers.get((t, "teacher"))
        if done(teacher):
            mean, std = 100 * teacher["dev_mean"], 100 * (teacher["dev_std"] or 0)
            ax.axhline(mean, ls="--", color="C0", label=f"teacher (n={teacher.get('n', 1)})")
            ax.axhspan(mean - std, mean + std, color="C0", alpha=0.15)
            ax.legend(fontsize=7, loc="lower right")
        ax.set_xticks(range(len(methods)), methods, rotation=45)
        ax.set_xlim(-0.5, len(methods) - 0.5)
        ax.set_title(t)
        ax.set_ylabel(f"GLUE dev {get_task(t).main_metric}")
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    atomic_savefig(fig, path)
    plt.close(fig)
    return True


def plot_low_data(tasks: list[str], fractions: list[float], numbers: dict, path: Path) -> bool:
    """The low-data study as one panel per task (dev metric, mean +- std over seeds, against the share of the
    training set on a log axis), saved as PNG at `path`; False when no cell is finished yet. `numbers` is
    {(task, method, fraction): result or None} for every task, LOW_DATA_METHODS method and fraction (KeyError
    for a missing one)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not any(numbers.values()):
        return False
    fig, axes = plt.subplots(1, len(tasks), figsize=(4 * len(tasks), 3.5), squeeze=False)
    for ax, t in zip(axes[0], tasks):
        for m in LOW_DATA_METHODS:
            points = [(f, numbers[(t, m, f)]) for f in fractions if numbers[(t, m, f)]]
            if points:
                ax.errorbar([f for f, _ in points], [100 * r["dev_mean"] for _, r in points],
                            yerr=[100 * (r["dev_std"] or 0) for _, r in points], label=m, marker="o", capsize=3)
        ax.set_xscale("log")
        ax.set_title(t)
        ax.set_xlabel("share of the training set")
        ax.set_ylabel(f"dev {get_task(t).main_metric}")
        if ax.get_legend_handles_labels()[0]:  # a task with no finished cell yet has nothing to label
            ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_savefig(fig, path)
    plt.close(fig)
    return True
