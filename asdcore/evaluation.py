"""Evaluating a submission in the official file formats (``asdcore evaluate --year Y --scores DIR``)."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ArtifactError
from .interfaces import Evaluation, Scorer, Submission
from .metrics import lacking

ALL = "all"


def evaluate_submission(scorer: Scorer, scores_dir: Path, ground_truth_dir: Path | None, *,
                        allow_partial: bool = False) -> dict[str, Any]:
    """Every metric per section, the official score per machine type and subset, the overall
    official score over all evaluated sections (and ci95 where the year defines it), as plain data.

    Groups the ground truth has but the submission lacks are an error unless ``allow_partial``;
    they, and machine types left out of the official scores (clips of a single class), are listed
    in ``missing`` (``complete`` is False then)."""
    scores_dir, ground_truth_dir = Path(scores_dir), Path(ground_truth_dir) if ground_truth_dir else None
    parts = scorer.read_submission(scores_dir, ground_truth_dir)
    absent = scorer.missing_groups(scores_dir, ground_truth_dir)
    if absent and not allow_partial:
        raise ArtifactError(f"{scores_dir}: no score files for {', '.join(absent)}; "
                            f"--allow-partial scores the rest without them")
    with _warning_once():  # the overall pass evaluates every section a second time
        result, by_subset = _report(scorer, parts)
    missing = absent + _unscored(parts, by_subset)
    return {**result, "complete": not missing, "missing": missing}


def _report(scorer: Scorer, parts: list[Submission]) -> tuple[dict[str, Any], list[Evaluation]]:
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
    return result, by_subset


def _evaluate(scorer: Scorer, part: Submission, subsets: dict[int, str]) -> Evaluation:
    return scorer.evaluate(part.machine, part.test, part.scores, subsets, part.decisions)


def _unscored(parts: Sequence[Submission], evaluations: Sequence[Evaluation]) -> list[str]:
    """Official sections with NaN metrics of machine types left out of a subset's official score,
    with what their clips lack, e.g. 'pump section 00: no anomalous clips'."""
    out = []
    for part, evaluation in zip(parts, evaluations):
        left_out = {subset for subset, values in evaluation.pooled.items() if not np.all(np.isfinite(values))}
        undefined = sorted({int(section) for section, _, value in evaluation.metrics
                            if section.isdigit() and np.isnan(value)})
        for section in undefined:
            if part.subsets.get(section) in left_out:
                mask = part.test.section == section
                reason = lacking(part.test.domain[mask], part.test.is_anomaly[mask])
                out.append(f"{part.machine} section {section:02d}: {reason}")
    return out


@contextmanager
def _warning_once():
    """Drop repeats of log messages of the ``asdcore`` logger while inside."""
    seen: set[str] = set()

    def first(record: logging.LogRecord) -> bool:
        message = record.getMessage()
        new = message not in seen
        seen.add(message)
        return new

    logger = logging.getLogger("asdcore")
    logger.addFilter(first)
    try:
        yield
    finally:
        logger.removeFilter(first)
