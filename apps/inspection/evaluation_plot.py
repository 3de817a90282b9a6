"""The evaluation figure: image-level ROC and PR curves per defect type and model, plus example heatmaps.

Layout: one row of curves (ROC, then precision-recall; the student solid, the
teacher dashed, one colour per defect type; the calibrated operating point
marked), then one row of example heatmaps of the first model (the highest
scored image of each defect type and the highest scored good image), drawn by
:func:`npusuite.inspection.heatmaps.render` at source resolution.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_evaluation(report, scored: list, split, path: Path, examples: int = 5) -> Path:
    import cv2
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve, roc_curve

    from npusuite.inspection.heatmaps import render

    kinds = np.array(split.kinds)
    defect_kinds = split.defect_kinds
    colours = plt.get_cmap("tab10")
    fig = plt.figure(figsize=(4.2 * max(3, examples), 8.4))
    grid = fig.add_gridspec(2, max(3, examples), height_ratios=[1.0, 1.0])
    ax_roc, ax_pr = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1])
    ax_txt = fig.add_subplot(grid[0, 2:])
    lines = []
    for s, m in zip(scored, report.models, strict=True):
        style = "-" if m.role == "student" else "--"
        good = s.scores[kinds == "good"]
        for c, kind in enumerate(defect_kinds):
            defect = s.scores[kinds == kind]
            y = np.r_[np.zeros(len(good)), np.ones(len(defect))]
            x = np.r_[good, defect]
            fpr, tpr, _ = roc_curve(y, x)
            prec, rec, _ = precision_recall_curve(y, x)
            ax_roc.plot(fpr, tpr, style, color=colours(c % 10), label=f"{m.role} {kind}")
            ax_pr.plot(rec, prec, style, color=colours(c % 10))
            op = m.per_defect[kind]
            ax_roc.plot([m.realised_frr], [op.recall], "o" if m.role == "student" else "s", color=colours(c % 10),
                        mfc="none")
        if m.mean is not None:
            lines.append(f"{m.role}: image AUROC {m.mean.image_auroc:.3f}, recall {m.mean.recall:.3f}, "
                         f"F1 {m.mean.f1:.3f}" + (f", pixel AUROC {m.mean.pixel_auroc:.3f}, PRO {m.mean.pro:.3f}"
                                                  if m.mean.pro is not None else ""))
        lines.append(f"   threshold {m.threshold:.4f}: FRR {m.realised_frr:.3f} on {m.good_images} good "
                     f"(target {m.target_frr:.3f})")
    ax_roc.set(xlabel="false-reject rate (good images)", ylabel="recall", title="image ROC (o = calibrated)",
               xlim=(-0.01, 1.0), ylim=(0.0, 1.01))
    ax_roc.legend(fontsize=7, loc="lower right")
    ax_pr.set(xlabel="recall", ylabel="precision", title="image precision-recall", xlim=(0, 1.01), ylim=(0, 1.01))
    ax_txt.axis("off")
    ax_txt.text(0.0, 1.0, f"{report.data}\n" + "\n".join(lines), va="top", family="monospace", fontsize=8)

    first = scored[0]
    picks = []
    for kind in (defect_kinds + ["good"])[:examples]:
        idx = np.flatnonzero(kinds == kind)
        picks.append((kind, int(idx[np.argmax(first.scores[idx])])))
    for col, (kind, i) in enumerate(picks):
        image = split.images[i]
        heat = cv2.resize(first.heat[i], (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
        panel = render(image, heat, float(first.scores[i]), report.models[0].threshold, first.model.card.role)
        ax = fig.add_subplot(grid[1, col])
        ax.imshow(panel[:, :, ::-1])
        ax.set_title(f"{kind}: {split.names[i]}", fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
