"""The Embeddings page's numbers in words: one accuracy per encoder, every other score named for what it is.

An encoder's accuracy is its run's headline (``RunSummary.metric``: the number the Train and Compare
pages show for that run, on its whole test set). The page's other numbers are not accuracies of the
encoder and say so: the kNN vote on the embedded images, and leave-one-out kNN among the shown
images (a separation score). Pure text (no streamlit), so the wording is tested directly.
"""

from __future__ import annotations

import math

from byol_core.lab.summary import RunSummary

ACCURACY_LABEL = "Accuracy"
SEPARATION_LABEL = "Separation score"
SEPARATION_WORDS = "leave-one-out kNN among the shown images — a separation score, not a test accuracy"
KNN_WORDS = "kNN on these embeddings"


def accuracy(summary: RunSummary | None) -> tuple[str, str]:
    """(value, help) of the encoder's one accuracy: its run's headline, or "–" for a random init / no score."""
    if summary is None:
        return "–", ("An untrained network has no run and so no accuracy of its own; how kNN does on its "
                      f"features is the '{KNN_WORDS}' line under the plot (colour by correct / incorrect).")
    if summary.metric is None or math.isnan(summary.metric):
        return "–", f"Run {summary.id} has no {summary.metric_name or 'accuracy'} yet (it has not been scored)."
    name = summary.metric_name or "accuracy"
    return f"{100 * summary.metric:.1f}%", (
        f"The run's {name} on its whole test set: the same number as on the Train and Compare pages. The page's "
        "other numbers are named for what they measure, and are not this accuracy.")


def separation(score: float | None) -> tuple[str, str]:
    """(value, help) of the leave-one-out kNN separation score of the shown images."""
    value = "–" if score is None or math.isnan(score) else f"{100 * score:.1f}%"
    return value, (f"{SEPARATION_WORDS[0].upper()}{SEPARATION_WORDS[1:]}: the share of shown images whose 20 nearest "
                   "neighbours among the other shown images (cosine) vote for their own class. It rises with how "
                   "many images are shown and needs no training images.")


def knn_caption(hits: int, misses: int, *, scored_rows: str = "shown images") -> str:
    """The plot's caption line for the kNN vote on the embedded images (the correct / incorrect colouring)."""
    total = hits + misses
    share = f"{100 * hits / total:.1f}%" if total else "–"
    return (f"{KNN_WORDS} (the labelled training images vote) gets {share} of them right "
            f"({hits} correct, {misses} incorrect, of the {total} labelled {scored_rows}); not the encoder's "
            "accuracy above, which is its run's score on the whole test set.")


def selection_knn_caption(name: str, hits: int, misses: int) -> str:
    total = hits + misses
    return (f"{KNN_WORDS} under {name}: {hits} correct, {misses} incorrect"
            f" ({100 * hits / max(total, 1):.0f}% of the selection's labelled images).")
