"""Adversarial training in embedding space (FGM, PGD, FreeLB) for the classifier.

Every method perturbs `encoder.embed(ids)` (token embeddings, before positions) and never pad positions.
Perturbations are found with torch.autograd.grad w.r.t. the perturbation only, so no parameter .grad is
touched along the way: each function returns a loss whose single .backward() gives the right parameter
gradients. That works the same under Lightning's automatic optimisation (return it from training_step)
and under manual optimisation (self.manual_backward(loss)).

Each method returns (loss, delta) where delta is the (detached) perturbation that was applied last.

`salient_unk` is the discrete counterpart: the tokens a greedy word-level attacker would hit first (the ones
whose loss of meaning, i.e. becoming <unk>, raises the loss most to first order, as in HotFlip) are hidden and
the model is trained on the result. An embedding ball never contains "this word is gone"; this does.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
METHODS = ("none", "fgm", "pgd", "freelb")


def _keep(model, ids: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,T,1) mask: 1 on real tokens, 0 on padding (padding is never perturbed)."""
    return ids.ne(model.encoder.pad_id).unsqueeze(-1).to(like.dtype)


def _norm(x: torch.Tensor) -> torch.Tensor:
    """Per-example L2 norm over the whole (T,D) perturbation, shaped (B,1,1) for broadcasting."""
    return x.flatten(1).norm(dim=1).clamp(min=1e-12).view(-1, 1, 1)


def _project(delta: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Project each example's perturbation onto the L2 ball of radius epsilon."""
    return delta * (epsilon / _norm(delta)).clamp(max=1.0)


def _clean_gradient(
    model,
    ids: torch.Tensor,
    labels: torch.Tensor,
    loss_fn: LossFn,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(embeddings, clean loss, dL/d embeddings); the graph is kept for the caller's backward."""
    emb = model.encoder.embed(ids)
    clean = loss_fn(model(ids, embeds=emb), labels)
    (g,) = torch.autograd.grad(clean, emb, retain_graph=True)
    return emb, clean, g


def fgm(
    model,
    ids: torch.Tensor,
    labels: torch.Tensor,
    loss_fn: LossFn = F.cross_entropy,
    epsilon: float = 1.0,
    _clean: tuple | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Miyato et al. 2017: one step r = eps * g / ||g||; loss = clean + adversarial (r treated as constant)."""
    emb, clean, g = _clean or _clean_gradient(model, ids, labels, loss_fn)
    g = g * _keep(model, ids, g)
    delta = (epsilon * g / _norm(g)).detach()
    adv = loss_fn(model(ids, embeds=emb + delta), labels)
    return clean + adv, delta


def pgd(
    model,
    ids: torch.Tensor,
    labels: torch.Tensor,
    loss_fn: LossFn = F.cross_entropy,
    epsilon: float = 1.0,
    steps: int = 3,
    step_size: float = 0.3,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Madry et al. 2018: `steps` normalised ascent steps, each projected onto the eps ball.
    The attack runs on detached embeddings; the final loss is clean + loss at the found perturbation."""
    emb = model.encoder.embed(ids)
    clean = loss_fn(model(ids, embeds=emb), labels)
    keep = _keep(model, ids, emb)
    base = emb.detach()
    delta = torch.zeros_like(base)
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = loss_fn(model(ids, embeds=base + delta), labels)
        (g,) = torch.autograd.grad(loss, delta)
        g = g * keep
        delta = _project(delta.detach() + step_size * g / _norm(g), epsilon) * keep
    delta = delta.detach()
    adv = loss_fn(model(ids, embeds=emb + delta), labels)
    return clean + adv, delta


def freelb(
    model,
    ids: torch.Tensor,
    labels: torch.Tensor,
    loss_fn: LossFn = F.cross_entropy,
    epsilon: float = 1.0,
    steps: int = 3,
    step_size: float = 0.3,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Zhu et al. 2020: random start inside the ball, K ascent steps; parameter gradients are accumulated
    over all K perturbed losses and averaged. Here that is (1/K) * sum_k loss_k in one graph, so one
    .backward() accumulates exactly what FreeLB's K backward passes would."""
    emb = model.encoder.embed(ids)
    keep = _keep(model, ids, emb)
    # Uniform init scaled by eps/sqrt(#real coords): each example starts with ||delta|| <= eps.
    n_coords = keep.flatten(1).sum(1).view(-1, 1, 1) * emb.size(-1)
    delta = (torch.empty_like(emb).uniform_(-1, 1) * keep * epsilon / n_coords.clamp(min=1).sqrt()).detach()
    total = emb.new_zeros(())
    for k in range(steps):
        delta.requires_grad_(True)
        loss = loss_fn(model(ids, embeds=emb + delta), labels) / steps
        total = total + loss
        if k == steps - 1:
            break  # the last ascent step would only feed the next batch's attack, which FreeLB restarts
        (g,) = torch.autograd.grad(loss, delta, retain_graph=True)  # keep graph: total.backward() needs it
        g = g * keep
        delta = (_project(delta.detach() + step_size * g / _norm(g), epsilon) * keep).detach()
    return total, delta.detach()


def salient_unk(
    model,
    ids: torch.Tensor,
    labels: torch.Tensor,
    budget: float,
    unk_id: int,
    loss_fn: LossFn = F.cross_entropy,
    _clean: tuple | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hide the max(1, floor(budget * n)) most salient of each example's n real tokens behind <unk> and return
    (loss on the result, the adversarial ids). Salience of token t is the first-order loss change of swapping
    it for <unk>: (e_unk - e_t) . dL/de_t (HotFlip, Ebrahimi et al. 2018), one gradient for the whole batch.
    Position 0 ([CLS]), padding and tokens that already are <unk> are never picked. The budget counts tokens
    the way the attack suite's `max_edits` does, so training and evaluation mean the same thing by it."""
    emb, _, g = _clean or _clean_gradient(model, ids, labels, loss_fn)
    unk = model.encoder.embed(ids.new_full((1, 1), unk_id)).detach()
    gain = ((unk - emb.detach()) * g).sum(-1)  # (B,T)
    real = ids.ne(model.encoder.pad_id) & ids.ne(unk_id)
    real[:, 0] = False
    gain = gain.masked_fill(~real, float("-inf"))
    n_real = ids.ne(model.encoder.pad_id).sum(1) - 1  # [CLS] is not a token of the text
    # max(1, floor(budget * n)) as in the attack suite's max_edits; never more than the candidates left.
    k = torch.minimum((budget * n_real + 1e-6).floor().clamp(min=1).long(), real.sum(1))
    rank = gain.argsort(dim=1, descending=True).argsort(dim=1)  # 0 = most salient
    hide = (rank < k.unsqueeze(1)) & real
    adv_ids = ids.masked_fill(hide, unk_id)
    return loss_fn(model(adv_ids), labels), adv_ids


def adversarial_loss(
    method: str,
    model,
    ids: torch.Tensor,
    labels: torch.Tensor,
    epsilon: float = 1.0,
    steps: int = 3,
    step_size: float = 0.3,
    loss_fn: LossFn = F.cross_entropy,
    token_budget: float = 0.0,
    unk_id: int | None = None,
) -> torch.Tensor:
    """Training loss for `method` in METHODS; call .backward() on it once. "none" = plain clean loss.
    `token_budget` > 0 adds the discrete term `salient_unk` (needs `unk_id`) to any method's loss."""
    if token_budget > 0 and unk_id is None:
        raise ValueError("token_budget > 0 needs the vocabulary's unk_id")
    # FGM and the token adversary both start from the clean loss's gradient: compute it once for the two.
    clean = _clean_gradient(model, ids, labels, loss_fn) if method == "fgm" and token_budget > 0 else None
    if method == "none":
        loss = loss_fn(model(ids), labels)
    elif method == "fgm":
        loss = fgm(model, ids, labels, loss_fn, epsilon, _clean=clean)[0]
    elif method == "pgd":
        loss = pgd(model, ids, labels, loss_fn, epsilon, steps, step_size)[0]
    elif method == "freelb":
        loss = freelb(model, ids, labels, loss_fn, epsilon, steps, step_size)[0]
    else:
        raise ValueError(f"unknown adversarial method {method!r}; expected one of {METHODS}")
    if token_budget > 0:
        loss = loss + salient_unk(model, ids, labels, token_budget, unk_id, loss_fn, _clean=clean)[0]
    return loss
