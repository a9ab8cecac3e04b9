"""What attacks report: the outcome per example (:class:`AttackResult`) and per attack and language
(:class:`AttackSummary`, one row of the suite table)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SUITE_COLUMNS = [
    "attack",
    "lang",
    "n",
    "clean_accuracy",
    "accuracy_under_attack",
    "attack_success_rate",
    "avg_perturbed_pct",
    "avg_queries",
]


@dataclass
class AttackResult:
    original: str
    perturbed: str
    label: int
    original_pred: int
    perturbed_pred: int
    success: bool  # originally correct, now wrong
    skipped: bool  # originally wrong: not attacked
    tokens_changed: int
    n_tokens: int
    queries: int


@dataclass
class AttackSummary:
    attack: str
    lang: str
    n: int
    clean_accuracy: float
    accuracy_under_attack: float
    attack_success_rate: float  # successes / originally correct
    avg_perturbed_pct: float  # mean % of tokens changed over attacked (originally correct) examples
    avg_queries: float  # mean queries over attacked examples
    results: list[AttackResult] = field(default_factory=list, repr=False)

    def as_row(self) -> dict:
        return {c: getattr(self, c) for c in SUITE_COLUMNS}


def summarise(attack: str, lang: str, results: list[AttackResult]) -> AttackSummary:
    n = len(results)
    attacked = [r for r in results if not r.skipped]
    nan = float("nan")
    clean = len(attacked) / n if n else nan
    robust = sum(1 for r in attacked if not r.success)
    pcts = [100.0 * r.tokens_changed / r.n_tokens for r in attacked if r.n_tokens > 0]
    return AttackSummary(
        attack=attack,
        lang=lang,
        n=n,
        clean_accuracy=clean,
        accuracy_under_attack=robust / n if n else nan,
        attack_success_rate=sum(r.success for r in attacked) / len(attacked) if attacked else nan,
        avg_perturbed_pct=float(np.mean(pcts)) if pcts else nan,
        avg_queries=float(np.mean([r.queries for r in attacked])) if attacked else nan,
        results=results,
    )


def worst_case(per_attack: list[list[AttackResult]]) -> list[AttackResult]:
    """Combine simple attacks per example: robust only if it survives every attack. The reported perturbation is
    the cheapest successful one, or else the largest one survived; queries are summed."""
    combined = []
    for rs in zip(*per_attack):
        first = rs[0]
        if first.skipped:
            combined.append(first)
            continue

        def pct(r: AttackResult) -> float:
            return r.tokens_changed / r.n_tokens if r.n_tokens else 0.0

        wins = [r for r in rs if r.success]
        pick = min(wins, key=pct) if wins else max(rs, key=pct)
        combined.append(
            AttackResult(
                original=first.original,
                perturbed=pick.perturbed,
                label=first.label,
                original_pred=first.original_pred,
                perturbed_pred=pick.perturbed_pred,
                success=bool(wins),
                skipped=False,
                tokens_changed=pick.tokens_changed,
                n_tokens=pick.n_tokens,
                queries=sum(r.queries for r in rs),
            )
        )
    return combined
