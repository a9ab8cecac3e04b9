import warnings

import pytest
import torch

from sora.training.fit import ResumableFit


def test_resume_only_with_the_same_fingerprint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    work = ResumableFit(tmp_path / "work/finetune", print_fn=lambda *_: None)
    assert work.prepare("fp-1") is None  # fresh
    torch.save({"epoch": 1}, work.dir / "last.ckpt")
    assert work.prepare("fp-1") == str(work.dir / "last.ckpt")  # same params/data: resume
    assert work.prepare("fp-2") is None  # changed: start fresh, old checkpoint gone
    assert not (work.dir / "last.ckpt").exists()
    torch.save({"epoch": 0, "w": torch.zeros(2)}, work.dir / "best.ckpt")
    torch.save({"epoch": 1, "w": torch.ones(2)}, work.dir / "last.ckpt")
    work.finish(tmp_path / "out")
    assert torch.load(tmp_path / "out/best.ckpt", weights_only=True)["epoch"] == 0 and not work.dir.exists()


class _Killed(RuntimeError):
    pass


def _fit(data, tiny_model, trainer_params, ckpt_dir, kill_at=None, resume=None, random_state=True):
    """A 3-epoch fit; `kill_at` stops it when that epoch starts, after the previous epoch's checkpoint."""
    import lightning as L

    from sora.training.data import TextDataModule
    from sora.training.modules import ClassifierModule
    from sora.training.trainer import RandomState, build_trainer, checkpoint_callbacks, seed_and_threads

    class Kill(L.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            if trainer.current_epoch == kill_at:
                raise _Killed

    train, val, vocab = data
    params = trainer_params(seed=0)
    seed_and_threads(params)
    module = ClassifierModule(len(vocab), vocab.pad_id, tiny_model, num_classes=2, lr=1e-2, token_dropout=0.2)
    dm = TextDataModule(train, val, val, vocab=vocab, max_len=tiny_model.max_len, batch_size=4)
    callbacks = [*checkpoint_callbacks(ckpt_dir, "val_acc", "max"), Kill()]
    if not random_state:
        callbacks = [c for c in callbacks if not isinstance(c, RandomState)]
    trainer = build_trainer(params, 3, ckpt_dir, callbacks=callbacks, enable_progress_bar=False)
    trainer.fit(module, datamodule=dm, ckpt_path=resume, weights_only=True)
    return {k: v.clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("random_state", [True, False])
def test_a_resumed_fit_ends_at_the_weights_of_an_uninterrupted_one(
    synthetic, tiny_model, trainer_params, tmp_path, random_state, monkeypatch
):
    """Without the random states in the checkpoint (random_state=False, as before) the resumed fit reshuffled
    and redrew its word dropout from a reseeded generator, and ended at other weights."""
    monkeypatch.chdir(tmp_path)
    whole = _fit(synthetic, tiny_model, trainer_params, tmp_path / "whole", random_state=random_state)
    with pytest.raises(_Killed):
        _fit(synthetic, tiny_model, trainer_params, tmp_path / "cut", kill_at=1, random_state=random_state)
    last = str(tmp_path / "cut/last.ckpt")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed = _fit(synthetic, tiny_model, trainer_params, tmp_path / "cut", resume=last, random_state=random_state)
    # Lightning forgets the best score (and a later tie replaces best.ckpt) when the recorded folder is not its own
    assert not [w for w in caught if "dirpath has changed" in str(w.message)]
    same = all(torch.equal(whole[k], resumed[k]) for k in whole)
    assert same is random_state
    if random_state:  # the best checkpoint too: a forgotten best score let a later tie replace it
        best = [torch.load(tmp_path / d / "best.ckpt", weights_only=True) for d in ("whole", "cut")]
        assert best[0]["epoch"] == best[1]["epoch"]
        assert all(torch.equal(v, best[1]["state_dict"][k]) for k, v in best[0]["state_dict"].items())
    # checkpoints name their folder relative to the repo root: a moved checkout resumes in its own tree
    ckpt = torch.load(tmp_path / "cut/last.ckpt", weights_only=True)
    paths = next(v for k, v in ckpt["callbacks"].items() if k.startswith("ModelCheckpoint"))
    assert paths["dirpath"] == "cut" and str(tmp_path) not in (tmp_path / "cut/best.ckpt").read_bytes().decode(
        "latin-1"
    )


def test_curves_are_cut_back_to_the_checkpoint(tmp_path):
    """Steps the killed run logged after its last checkpoint were logged again on resume: the plots held them
    twice."""
    from sora.training.fit import drop_curve_rows_from

    tsv = tmp_path / "plots/metrics/train/loss.tsv"
    tsv.parent.mkdir(parents=True)
    tsv.write_text("step\tloss\n19\t0.5\n39\t0.4\n40\t0.35\n59\t0.3\n")
    drop_curve_rows_from(tmp_path, 40)  # checkpoint after 40 steps: rows 0-39 are its epochs'
    assert tsv.read_text() == "step\tloss\n19\t0.5\n39\t0.4\n"


def test_a_torn_checkpoint_starts_the_fit_afresh(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    work = ResumableFit(tmp_path / "work/finetune", print_fn=lambda *_: None)
    work.prepare("fp-1")
    torch.save({"epoch": 1, "w": torch.ones(1000)}, work.dir / "last.ckpt")
    whole = (work.dir / "last.ckpt").read_bytes()
    (work.dir / "last.ckpt").write_bytes(whole[: len(whole) // 2])  # killed while Lightning wrote it
    assert work.prepare("fp-1") is None and not (work.dir / "last.ckpt").exists()


def test_equal_checkpoints_are_saved_as_equal_bytes():
    """Pickle refers back to an object it wrote before by identity: a resumed fit (optimizer state read from a
    file) wrote equal content as other bytes, so the output's DVC hash differed from an uninterrupted run's."""
    import io

    from sora.training.fit import canonical

    key = "step"
    shared = {"a": {key: torch.ones(2)}, "b": {key: 1}}
    separate = {"a": {"".join(["st", "ep"]): torch.ones(2)}, "b": {"".join(["st", "ep"]): 1}}

    def saved(obj) -> bytes:
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        return buffer.getvalue()

    assert saved(shared) != saved(separate)
    assert saved(canonical(shared)) == saved(canonical(separate))
