"""Per-example plan metrics, all fractions in [0, 1].

- ``plan_accuracy``: 1 when the predicted tool names equal the gold ones in the same order.
- ``tool_precision`` / ``tool_recall`` / ``tool_f1``: over the multisets of tool names of this
  example (averaging them over examples gives the macro-over-examples figures).
- ``argname_precision`` / ``argname_recall`` / ``argname_f1``: the same over ``tool.argument``
  pairs, so an argument counts only under the right tool.
- ``plan_valid``: 1 when the predicted plan is valid against the tool catalogue
  (:func:`~dataenvgym_dagster.domain.tool_use.plans.plan_problems`).

An unparsable completion scores 0 on every metric.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from dataenvgym_dagster.domain.tool_use.catalogue import ToolCatalogue
from dataenvgym_dagster.domain.tool_use.plans import PlanStep, plan_problems

METRICS = (
    "plan_accuracy", "tool_precision", "tool_recall", "tool_f1",
    "argname_precision", "argname_recall", "argname_f1", "plan_valid",
)


def precision_recall_f1(gold: Iterable[str], predicted: Iterable[str]) -> tuple[float, float, float]:
    """Multiset precision, recall and F1 of ``predicted`` against ``gold`` (0 where undefined)."""
    gold_counts, predicted_counts = Counter(gold), Counter(predicted)
    overlap = sum((gold_counts & predicted_counts).values())
    precision = overlap / sum(predicted_counts.values()) if predicted_counts else 0.0
    recall = overlap / sum(gold_counts.values()) if gold_counts else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def _argument_labels(plan: Sequence[PlanStep]) -> list[str]:
    return [f"{step.name}.{arg}" for step in plan for arg in step.args]


def plan_metrics(gold: Sequence[PlanStep], predicted: Sequence[PlanStep] | None, catalogue: ToolCatalogue) -> dict[str, float]:
    """Every metric of :data:`METRICS` for one example; ``predicted=None`` (unparsable) scores 0."""
    if predicted is None:
        return dict.fromkeys(METRICS, 0.0)
    gold_names, predicted_names = [step.name for step in gold], [step.name for step in predicted]
    tool = precision_recall_f1(gold_names, predicted_names)
    argname = precision_recall_f1(_argument_labels(gold), _argument_labels(predicted))
    return {
        "plan_accuracy": float(gold_names == predicted_names),
        "tool_precision": tool[0], "tool_recall": tool[1], "tool_f1": tool[2],
        "argname_precision": argname[0], "argname_recall": argname[1], "argname_f1": argname[2],
        "plan_valid": float(not plan_problems(predicted, catalogue)),
    }


def verdict(gold: Sequence[PlanStep], predicted: Sequence[PlanStep] | None, metrics: dict[str, float]) -> str:
    """``correct``, ``unparsable``, ``wrong order`` (same tools), ``missing tools``, ``extra tools`` or ``wrong tools``."""
    if predicted is None:
        return "unparsable"
    if metrics["plan_accuracy"] == 1.0:
        return "correct"
    gold_names, predicted_names = Counter(s.name for s in gold), Counter(s.name for s in predicted)
    if gold_names == predicted_names:
        return "wrong order"
    if predicted_names < gold_names:
        return "missing tools"
    if gold_names < predicted_names:
        return "extra tools"
    return "wrong tools"
