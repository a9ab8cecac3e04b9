"""Progress a person can follow through a pipe: timed lines instead of a bar's last frame."""

import io

from sora.progress import ProgressLines, progress


def test_lines_come_at_the_interval_with_counts_rate_and_eta(monkeypatch):
    now = [0.0]
    monkeypatch.setattr("sora.progress.time.monotonic", lambda: now[0])
    out = io.StringIO()
    lines = ProgressLines("attacks", 100, interval=30, out=out, ticker=False)
    for t in (10.0, 20.0, 31.0, 40.0, 62.0):  # 10 more done at each time
        now[0] = t
        lines.advance(10, extra=lambda: "loss 0.5")
    lines.finish()
    printed = out.getvalue().splitlines()
    # at 31 s (30 done) and at 62 s (50 done): nothing at 10 s or 40 s, then the closing line
    assert printed[0].startswith("attacks: 30/100 (30%), 1.0/s, 0:31 elapsed, ETA 1:12, loss 0.5")
    assert printed[1].startswith("attacks: 50/100 (50%)")
    assert printed[2].startswith("attacks: 50/100 (50%)") and len(printed) == 3


def test_a_step_longer_than_the_interval_still_prints_lines():
    import time

    out = io.StringIO()
    lines = ProgressLines("fitting", 2, interval=0.05, out=out)
    lines.advance(1)
    time.sleep(0.3)  # one slow step: the ticker keeps reporting
    during = out.getvalue().splitlines()
    lines.finish()
    assert len(during) >= 3 and all(line.startswith("fitting: 1/2 (50%)") for line in during)
    assert out.getvalue().splitlines()[-1].startswith("fitting: 1/2 (50%)")
    assert not lines._ticker.is_alive()


def test_progress_through_a_pipe_prints_lines_not_a_bar(capsys, monkeypatch):
    monkeypatch.setenv("SORA_PROGRESS_SECONDS", "0")
    with progress("tokenising", 3) as bar:
        bar.describe("tokenising zh")
        for _ in range(3):
            bar.advance(1)
    out = capsys.readouterr().out.splitlines()
    assert out[:3] == [line for line in out[:3] if line.startswith("tokenising zh: ")]
    assert out[-1].startswith("tokenising zh: 3/3 (100%)")


def test_a_fit_through_a_pipe_reports_steps_loss_and_validation(synthetic, tiny_model, trainer_params, tmp_path,
                                                                capsys, monkeypatch):  # fmt: skip
    from sora.training.data import TextDataModule
    from sora.training.modules import ClassifierModule
    from sora.training.trainer import build_trainer

    monkeypatch.setenv("SORA_PROGRESS_SECONDS", "0")
    train, val, vocab = synthetic
    module = ClassifierModule(len(vocab), vocab.pad_id, tiny_model, num_classes=2, lr=1e-2)
    data = TextDataModule(train, val, val, vocab=vocab, max_len=tiny_model.max_len, batch_size=4)
    trainer = build_trainer(trainer_params(seed=0), max_epochs=2, default_root_dir=tmp_path, limit_train_batches=3)
    trainer.fit(module, datamodule=data)
    out = capsys.readouterr().out.splitlines()
    steps = [line for line in out if line.startswith("train: ")]
    assert steps[0].startswith("train: 1/6 (17%)") and "epoch 1/2" in steps[0]
    assert steps[-1].startswith("train: 6/6 (100%)") and "epoch 2/2, loss " in steps[-1]
    assert sum(line.startswith("validation after epoch") and "val_acc " in line for line in out) == 2
