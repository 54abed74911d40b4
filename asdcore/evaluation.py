"""Evaluating a submission in the official file formats (``asdcore evaluate --year Y --scores DIR``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .interfaces import Evaluation, Scorer, Submission

ALL = "all"


def evaluate_submission(scorer: Scorer, scores_dir: Path, ground_truth_dir: Path | None) -> dict[str, Any]:
    """Every metric per section, the official score per machine type and subset, the overall
    official score over all evaluated sections (and ci95 where the year defines it), as plain data."""
    parts = scorer.read_submission(Path(scores_dir), Path(ground_truth_dir) if ground_truth_dir else None)
    by_subset = [_evaluate(scorer, part, part.subsets) for part in parts]
    per_subset = scorer.aggregate(by_subset)
    if len(per_subset) == 1:  # one subset: the overall score is that subset's (no second jackknife)
        [(only, overall)] = per_subset.items()
        pooled = [Evaluation(e.machine, [], {ALL: e.official[only]} if only in e.official else {}, {})
                  for e in by_subset]
    else:
        pooled = [_evaluate(scorer, part, {section: ALL for section in part.subsets}) for part in parts]
        overall = scorer.aggregate(pooled).get(ALL, {})
    result: dict[str, Any] = {
        "year": getattr(scorer, "year", None),
        "official_score": overall.get("official"),
        "machines": {},
        "subsets": {subset: stats["official"] for subset, stats in per_subset.items()},
    }
    if "ci95" in overall:
        result["ci95"] = overall["ci95"]
    for part, evaluation, whole in zip(parts, by_subset, pooled):
        sections: dict[str, dict[str, float]] = {}
        for section, metric, value in evaluation.metrics:
            if section.isdigit():
                sections.setdefault(section, {})[metric] = value
        result["machines"][part.machine] = {
            "official": whole.official.get(ALL),
            "subsets": dict(evaluation.official),
            "sections": sections,
        }
    return result


def _evaluate(scorer: Scorer, part: Submission, subsets: dict[int, str]) -> Evaluation:
    return scorer.evaluate(part.machine, part.test, part.scores, subsets, part.decisions)
