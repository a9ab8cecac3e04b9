"""Adversarial training in embedding space (FGM, PGD, FreeLB) for the classifier.

Every method perturbs `encoder.embed(ids)` (token embeddings, before positions) and never pad positions.
Perturbations are found with torch.autograd.grad w.r.t. the perturbation only, so no parameter .grad is
touched along the way: each function returns a loss whose single .backward() gives the right parameter
gradients. That works the same under Lightning's automatic optimisation (return it from training_step)
and under manual optimisation (self.manual_backward(loss)).

Each method returns (loss, delta) where delta is the (detached) perturbation that was applied last.
"""

from __future__ import annotations

from typing import Callable

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


def fgm(model, ids: torch.Tensor, labels: torch.Tensor, loss_fn: LossFn = F.cross_entropy,
        epsilon: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Miyato et al. 2017: one step r = eps * g / ||g||; loss = clean + adversarial (r treated as constant)."""
    emb = model.encoder.embed(ids)
    clean = loss_fn(model(ids, embeds=emb), labels)
    (g,) = torch.autograd.grad(clean, emb, retain_graph=True)  # retain: clean.backward() comes later
    g = g * _keep(model, ids, g)
    delta = (epsilon * g / _norm(g)).detach()
    adv = loss_fn(model(ids, embeds=emb + delta), labels)
    return clean + adv, delta


def pgd(model, ids: torch.Tensor, labels: torch.Tensor, loss_fn: LossFn = F.cross_entropy,
        epsilon: float = 1.0, steps: int = 3, step_size: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
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


def freelb(model, ids: torch.Tensor, labels: torch.Tensor, loss_fn: LossFn = F.cross_entropy,
           epsilon: float = 1.0, steps: int = 3, step_size: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
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


def adversarial_loss(method: str, model, ids: torch.Tensor, labels: torch.Tensor, epsilon: float = 1.0,
                     steps: int = 3, step_size: float = 0.3, loss_fn: LossFn = F.cross_entropy) -> torch.Tensor:
    """Training loss for `method` in METHODS; call .backward() on it once. "none" = plain clean loss."""
    if method == "none":
        return loss_fn(model(ids), labels)
    if method == "fgm":
        return fgm(model, ids, labels, loss_fn, epsilon)[0]
    if method == "pgd":
        return pgd(model, ids, labels, loss_fn, epsilon, steps, step_size)[0]
    if method == "freelb":
        return freelb(model, ids, labels, loss_fn, epsilon, steps, step_size)[0]
    raise ValueError(f"unknown adversarial method {method!r}; expected one of {METHODS}")
