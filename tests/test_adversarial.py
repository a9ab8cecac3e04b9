import pytest
import torch
import torch.nn.functional as F

from sora.models.classifier import Classifier
from sora.models.encoder import TransformerEncoder
from sora.training.adversarial import adversarial_loss, fgm, freelb, pgd, salient_unk

PAD = 0


def make_batch():
    torch.manual_seed(0)
    enc = TransformerEncoder(30, d_model=16, n_heads=2, n_layers=1, ff_dim=32, dropout=0.1, max_len=16, pad_id=PAD)
    model = Classifier(enc, num_classes=2, dropout=0.1)
    ids = torch.randint(4, 30, (4, 6))
    ids[0, 4:] = PAD  # ragged batch
    ids[2, 2:] = PAD
    labels = torch.tensor([0, 1, 0, 1])
    return model, ids, labels


@pytest.mark.parametrize("name", ["fgm", "pgd", "freelb"])
def test_methods(name):
    model, ids, labels = make_batch()
    eps = 0.5
    fn = {"fgm": fgm, "pgd": pgd, "freelb": freelb}[name]
    kwargs = {} if name == "fgm" else {"steps": 3, "step_size": 0.3}
    loss, delta = fn(model, ids, labels, F.cross_entropy, eps, **kwargs)
    assert torch.isfinite(loss)
    assert delta.shape == (4, 6, 16) and not delta.requires_grad
    norms = delta.flatten(1).norm(dim=1)
    assert (norms <= eps + 1e-5).all()
    if name == "fgm":
        assert torch.allclose(norms, torch.full_like(norms, eps), atol=1e-5)
    assert (delta[ids.eq(PAD)] == 0).all()  # padding never perturbed
    assert delta[ids.ne(PAD)].abs().sum() > 0
    # no parameter gradient appears before the caller's backward, and one backward reaches all of them
    assert all(p.grad is None for p in model.parameters())
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(g is not None for g in grads.values()), [n for n, g in grads.items() if g is None]
    assert grads["head.weight"].abs().sum() > 0 and grads["encoder.tok.weight"].abs().sum() > 0


@pytest.mark.parametrize("name", ["fgm", "pgd", "freelb"])
def test_entry_point(name):
    model, ids, labels = make_batch()
    loss = adversarial_loss(name, model, ids, labels, epsilon=0.5, steps=2, step_size=0.2)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()


def test_none_is_clean_loss():
    model, ids, labels = make_batch()
    model.eval()
    clean = F.cross_entropy(model(ids), labels)
    assert torch.allclose(adversarial_loss("none", model, ids, labels), clean)
    with pytest.raises(ValueError):
        adversarial_loss("bogus", model, ids, labels)


def test_freelb_matches_reference_loop():
    """One backward of freelb's loss == the paper's loop of K backward passes (grads accumulated, / K)."""
    model, ids, labels = make_batch()
    model.eval()  # no dropout: both computations see the same function
    eps, k_steps, step = 0.5, 3, 0.3
    torch.manual_seed(1)
    loss, _ = freelb(model, ids, labels, F.cross_entropy, eps, steps=k_steps, step_size=step)
    loss.backward()
    got = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()

    torch.manual_seed(1)
    keep = ids.ne(PAD).unsqueeze(-1).float()
    emb = model.encoder.embed(ids)
    n = keep.flatten(1).sum(1).view(-1, 1, 1) * emb.size(-1)
    delta = torch.empty_like(emb).uniform_(-1, 1) * keep * eps / n.sqrt()
    for _ in range(k_steps):
        delta = delta.detach().requires_grad_(True)
        (F.cross_entropy(model(ids, embeds=model.encoder.embed(ids) + delta), labels) / k_steps).backward()
        g = delta.grad * keep
        delta = delta.detach() + step * g / g.flatten(1).norm(dim=1).view(-1, 1, 1)
        norm = delta.flatten(1).norm(dim=1).view(-1, 1, 1)
        delta = delta * (eps / norm).clamp(max=1.0) * keep
    for name, p in model.named_parameters():
        assert torch.allclose(got[name], p.grad, atol=1e-5), name


def test_salient_unk_hides_the_most_salient_tokens_within_budget():
    """The picked tokens are those whose first-order loss gain (e_unk - e_t) . dL/de_t is largest; each example
    loses max(1, floor(budget * n)) of its n real tokens; [CLS], padding and existing <unk> are never picked."""
    model, ids, labels = make_batch()
    model.eval()
    unk = 1
    ids[:, 0] = 2  # [CLS]
    ids[1, 3] = unk  # already unknown: not a candidate
    budget = 0.25
    loss, adv = salient_unk(model, ids, labels, budget, unk)
    assert torch.isfinite(loss)
    hidden = adv.ne(ids)
    assert (adv[hidden] == unk).all()
    assert not hidden[:, 0].any() and not hidden[ids.eq(PAD)].any()
    n_real = ids.ne(PAD).sum(1) - 1
    assert hidden.sum(1).tolist() == [max(1, int(budget * n)) for n in n_real.tolist()]
    # the choice agrees with the first-order estimate computed by hand
    emb = model.encoder.embed(ids)
    (g,) = torch.autograd.grad(F.cross_entropy(model(ids, embeds=emb), labels), emb)
    gain = ((model.encoder.embed(torch.tensor([[unk]])) - emb) * g).sum(-1).detach()
    for row in range(ids.size(0)):
        candidates = [t for t in range(1, ids.size(1)) if ids[row, t] not in (PAD, unk)]
        best = max(candidates, key=lambda t: gain[row, t])
        assert hidden[row, best]
    assert all(p.grad is None for p in model.parameters())  # the attack itself leaves no parameter gradient


def test_token_budget_adds_the_discrete_term():
    model, ids, labels = make_batch()
    model.eval()
    ids[:, 0] = 2
    base = adversarial_loss("none", model, ids, labels)
    both = adversarial_loss("none", model, ids, labels, token_budget=0.3, unk_id=1)
    assert torch.allclose(both, base + salient_unk(model, ids, labels, 0.3, 1)[0])
    # with FGM the two terms share one clean gradient: same loss as computing them apart
    shared = adversarial_loss("fgm", model, ids, labels, epsilon=0.5, token_budget=0.3, unk_id=1)
    apart = fgm(model, ids, labels, F.cross_entropy, 0.5)[0] + salient_unk(model, ids, labels, 0.3, 1)[0]
    assert torch.allclose(shared, apart)
    shared.backward()
    assert all(p.grad is not None for p in model.parameters())
    with pytest.raises(ValueError, match="unk_id"):
        adversarial_loss("fgm", model, ids, labels, token_budget=0.3)
