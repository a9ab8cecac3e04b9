import pytest
import torch
import torch.nn.functional as F

from sora.models import Classifier, TransformerEncoder
from sora.training.adversarial import adversarial_loss, fgm, freelb, pgd

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
