from sora.training.fit import ResumableFit


def test_resume_only_with_the_same_fingerprint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    work = ResumableFit(tmp_path / "work/finetune", print_fn=lambda *_: None)
    assert work.prepare("fp-1") is None  # fresh
    (work.dir / "last.ckpt").write_bytes(b"x")
    assert work.prepare("fp-1") == str(work.dir / "last.ckpt")  # same params/data: resume
    assert work.prepare("fp-2") is None  # changed: start fresh, old checkpoint gone
    assert not (work.dir / "last.ckpt").exists()
    (work.dir / "best.ckpt").write_bytes(b"b")
    (work.dir / "last.ckpt").write_bytes(b"l")
    work.finish(tmp_path / "out")
    assert (tmp_path / "out/best.ckpt").read_bytes() == b"b" and not work.dir.exists()
