"""Plan metrics: per example (stored in ``Score.metrics``) and over a benchmark, as MnMs defines them.

The published metrics (MnMs's evaluator, ``evaluation/evaluator.py`` and ``evaluation/metrics.py``
of RAIVNLab/mnms) are computed over a whole set of examples, on a 0-100 scale:

- ``plan_accuracy``: share of examples whose ordered tool names equal the gold ones
  (the evaluator's ``plan_tool_accuracy``).
- ``tool_precision`` / ``tool_recall`` / ``tool_f1``: macro averages over the tools. Each plan's
  tools are a *set*; for a tool, its true positives are the examples whose gold and predicted sets
  both hold it, pooled over all examples; precision, recall and F1 are computed per tool and then
  averaged over the MnMs tools that appear in some gold or predicted plan (the evaluator's
  ``tool_macro_*``). A predicted name that is not an MnMs tool counts for no tool.
- ``argname_precision`` / ``argname_recall`` / ``argname_f1``: each step is labelled
  ``<tool>--<argument>--<argument>`` (argument names sorted); over the per-example sets of labels,
  precision is matched labels / predicted labels and recall matched / gold, both pooled over all
  examples (binary, micro); F1 from those two (the evaluator's ``argname_*``).
- ``plan_argname_accuracy``: share of examples whose ordered step labels equal the gold ones.

An unparsable completion is an empty plan: it matches nothing, and its gold tools and labels count.

Per example (``Score.metrics``, fractions in [0, 1] or counts), so that the warehouse view
``tool_use_metrics`` can pool them: ``plan_accuracy`` and ``plan_argname_accuracy`` (0 or 1),
``argname_gold`` / ``argname_predicted`` / ``argname_matched`` (sizes of the label sets and of their
overlap), ``tool_gold:<tool>`` / ``tool_predicted:<tool>`` (1 for each MnMs tool in the gold or
predicted plan), ``plan_valid`` (1 when the predicted plan is valid against the catalogue,
:func:`~dataenvgym_dagster.domain.tool_use.plans.plan_problems`), and the project's own
per-example figures ``example_tool_precision`` / ``example_tool_recall`` / ``example_tool_f1`` (over
the multisets of tool names of this example) and ``example_argname_f1`` (over ``tool.argument``
pairs), whose means are the macro-over-examples figures.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from dataenvgym_dagster.domain.tool_use.catalogue import ToolCatalogue
from dataenvgym_dagster.domain.tool_use.plans import PlanStep, plan_problems

METRICS = (
    "plan_accuracy", "plan_argname_accuracy", "example_tool_precision", "example_tool_recall", "example_tool_f1",
    "example_argname_f1", "argname_gold", "argname_predicted", "argname_matched", "plan_valid",
)
"""The per-example metrics every scored example carries (besides its ``tool_gold:``/``tool_predicted:`` keys)."""

PUBLISHED = (
    "plan_accuracy", "plan_argname_accuracy", "tool_precision", "tool_recall", "tool_f1",
    "argname_precision", "argname_recall", "argname_f1",
)
"""The benchmark-level metrics of MnMs's evaluator, on its 0-100 scale (see the module docstring)."""

GOLD_TOOL, PREDICTED_TOOL = "tool_gold:", "tool_predicted:"


def precision_recall_f1(gold: Iterable[str], predicted: Iterable[str]) -> tuple[float, float, float]:
    """Multiset precision, recall and F1 of ``predicted`` against ``gold`` (0 where undefined)."""
    gold_counts, predicted_counts = Counter(gold), Counter(predicted)
    overlap = sum((gold_counts & predicted_counts).values())
    return _prf(overlap, sum(predicted_counts.values()), sum(gold_counts.values()))


def _prf(matched: float, predicted: float, gold: float) -> tuple[float, float, float]:
    precision = matched / predicted if predicted else 0.0
    recall = matched / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def step_labels(plan: Sequence[PlanStep]) -> list[str]:
    """MnMs's argument-name labels: ``<tool>--<argument>--…`` per step, argument names sorted."""
    return ["--".join([step.name, *sorted(step.args)]) for step in plan]


def _argument_pairs(plan: Sequence[PlanStep]) -> list[str]:
    return [f"{step.name}.{arg}" for step in plan for arg in step.args]


def plan_metrics(gold: Sequence[PlanStep], predicted: Sequence[PlanStep] | None, catalogue: ToolCatalogue) -> dict[str, float]:
    """The per-example metrics (see the module docstring); ``predicted=None`` (unparsable) is an empty plan that is not valid."""
    plan = tuple(predicted or ())
    gold_names, predicted_names = [step.name for step in gold], [step.name for step in plan]
    gold_labels, predicted_labels = set(step_labels(gold)), set(step_labels(plan))
    tool = precision_recall_f1(gold_names, predicted_names)
    metrics = {
        "plan_accuracy": float(bool(plan) and gold_names == predicted_names),
        "plan_argname_accuracy": float(bool(plan) and step_labels(gold) == step_labels(plan)),
        "example_tool_precision": tool[0], "example_tool_recall": tool[1], "example_tool_f1": tool[2],
        "example_argname_f1": precision_recall_f1(_argument_pairs(gold), _argument_pairs(plan))[2],
        "argname_gold": float(len(gold_labels)), "argname_predicted": float(len(predicted_labels)),
        "argname_matched": float(len(gold_labels & predicted_labels)),
        "plan_valid": float(bool(plan) and not plan_problems(plan, catalogue)),
    }
    for prefix, names in ((GOLD_TOOL, gold_names), (PREDICTED_TOOL, predicted_names)):
        # The catalogue's own spelling, so that MnMs code names (get_location) and spaced names agree.
        metrics |= {f"{prefix}{catalogue[name].name}": 1.0 for name in names if name in catalogue}
    return metrics


def published_metrics(examples: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """MnMs's benchmark-level metrics (:data:`PUBLISHED`, 0-100) from the per-example metrics of :func:`plan_metrics`.

    The warehouse view ``tool_use_metrics`` computes the same figures in SQL.
    """
    if not examples:
        raise ValueError("MnMs metrics need at least one scored example")
    tools = sorted({key.split(":", 1)[1] for example in examples for key in example if key.startswith((GOLD_TOOL, PREDICTED_TOOL))})
    per_tool = []
    for tool in tools:
        gold = sum(GOLD_TOOL + tool in example for example in examples)
        predicted = sum(PREDICTED_TOOL + tool in example for example in examples)
        matched = sum(GOLD_TOOL + tool in example and PREDICTED_TOOL + tool in example for example in examples)
        per_tool.append(_prf(matched, predicted, gold))
    argname = _prf(*(sum(example[key] for example in examples) for key in ("argname_matched", "argname_predicted", "argname_gold")))
    macro = [sum(values) / len(per_tool) if per_tool else 0.0 for values in zip(*per_tool, strict=True)] or [0.0] * 3
    figures = {
        "plan_accuracy": sum(example["plan_accuracy"] for example in examples) / len(examples),
        "plan_argname_accuracy": sum(example["plan_argname_accuracy"] for example in examples) / len(examples),
        "tool_precision": macro[0], "tool_recall": macro[1], "tool_f1": macro[2],
        "argname_precision": argname[0], "argname_recall": argname[1], "argname_f1": argname[2],
    }
    return {name: 100 * value for name, value in figures.items()}


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
