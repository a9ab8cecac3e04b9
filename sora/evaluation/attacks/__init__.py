"""Deterministic, seeded adversarial attacks for robustness evaluation (in the spirit of TextAttack).

Two kinds of attack, both working on any ``predict_proba(list[str]) -> np.ndarray (N, C)`` callable:

* **Perturbation attacks** (:data:`ATTACKS`; edits in ``zh`` and ``en``) — model-agnostic random edits
  ``fn(text, lang, budget, rng) -> str``. ``budget`` is the largest share of tokens (spaCy tokens, jieba words for
  zh: the same tokens as :func:`sora.data.text.tokenise`) that may be edited: ``max_edits(budget, n) =
  max(1, floor(budget * n))`` edits when ``budget > 0``. Edits are applied in place on the original text
  (untouched parts, case and spacing are kept byte for byte) and never leave an empty / whitespace-only text
  (such an edit is skipped).
* **Greedy attack** (:func:`greedy_attack`, TextFooler-like without embeddings) — ranks tokens by importance
  (drop of the true-class probability when the token is deleted), then replaces them in that order by the
  candidate (char/word perturbations above) that lowers the true-class probability most, until the prediction
  flips or the budget is spent.

:func:`run_attack` and :func:`run_suite` report TextAttack-style numbers.

Modules: ``zh`` and ``en`` (the edits of each language), ``edits`` (token editing shared by all attacks),
``registry`` (:data:`ATTACKS`), ``greedy``, ``scoring`` (model queries), ``results`` and ``suite`` (runners).
"""

from sora.evaluation.attacks.edits import max_edits
from sora.evaluation.attacks.greedy import greedy_attack
from sora.evaluation.attacks.registry import ATTACKS, attacks_for
from sora.evaluation.attacks.results import SUITE_COLUMNS, AttackResult, AttackSummary
from sora.evaluation.attacks.suite import run_attack, run_suite
from sora.evaluation.attacks.zh import homophones

__all__ = [
    "ATTACKS",
    "SUITE_COLUMNS",
    "AttackResult",
    "AttackSummary",
    "attacks_for",
    "greedy_attack",
    "homophones",
    "max_edits",
    "run_attack",
    "run_suite",
]
