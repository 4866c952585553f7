import pickle

import pytest
import torch

from ablab.trainer import checkpoint


def state(step):
    return {"weights": torch.full((3,), float(step)), "step": step, "history": [{"bleu": 1.5}]}


def test_round_trip(tmp_path):
    path = checkpoint.step_path(tmp_path, 7)
    checkpoint.save(path, state(7))
    loaded = checkpoint.load(path)
    assert loaded["step"] == 7 and torch.equal(loaded["weights"], torch.full((3,), 7.0))
    assert path.name == "step-00000007.pt" and (tmp_path / "step-00000007.pt.sha256").is_file()
    assert not list(tmp_path.glob(".*tmp"))


def test_corruption_and_missing_checksum_are_detected(tmp_path):
    path = tmp_path / "a.pt"
    checkpoint.save(path, state(1))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(checkpoint.CorruptCheckpoint, match="does not match"):
        checkpoint.load(path)
    (tmp_path / "a.pt.sha256").unlink()
    with pytest.raises(checkpoint.CorruptCheckpoint, match="no checksum"):
        checkpoint.load(path)


def test_latest_skips_bad_checkpoints_and_says_why(tmp_path):
    for step in (1, 2, 3):
        checkpoint.save(checkpoint.step_path(tmp_path, step), state(step))
    checkpoint.step_path(tmp_path, 3).write_bytes(b"truncated")
    path, loaded, skipped = checkpoint.latest(tmp_path)
    assert loaded["step"] == 2 and path.name == "step-00000002.pt"
    assert len(skipped) == 1 and "step-00000003.pt" in skipped[0]
    assert checkpoint.latest(tmp_path / "missing") == (None, None, [])


def test_prune_keeps_newest(tmp_path):
    for step in (5, 10, 100):
        checkpoint.save(checkpoint.step_path(tmp_path, step), state(step))
    checkpoint.prune(tmp_path, keep=2)
    assert [p.name for p in checkpoint.step_checkpoints(tmp_path)] == ["step-00000100.pt", "step-00000010.pt"]
    assert not (tmp_path / "step-00000005.pt.sha256").exists()


def test_loading_refuses_arbitrary_objects(tmp_path):
    path = tmp_path / "evil.pt"
    checkpoint.save(path, {"obj": Exploit()})
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        checkpoint.load(path)


class Exploit:
    def __reduce__(self):
        return (print, ("pickle code ran",))
