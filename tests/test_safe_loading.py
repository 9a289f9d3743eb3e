"""Checkpoints hold tensors and plain values only: `semi predict / eval / export` read them with
torch.load(weights_only=True), refuse a file that needs a full unpickle with a clear message, and resuming still
reads checkpoints of older versions (numpy arrays inside)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from semi.cli import main
from semi.engine.checkpoint import load_checkpoint
from semi.engine.trainer import numpy_rng_state, set_numpy_rng_state
from semi.errors import CheckpointError

OLD = Path(__file__).resolve().parent / "data" / "pre-redesign-semi-step6.pt"


def test_numpy_rng_state_round_trips_through_plain_values():
    np.random.seed(7)
    np.random.rand(3)
    state = numpy_rng_state()
    expected = np.random.rand(5)
    np.random.rand(11)
    set_numpy_rng_state(state)
    assert np.array_equal(np.random.rand(5), expected)
    set_numpy_rng_state(np.random.get_state())  # an older checkpoint's raw tuple is accepted too


@pytest.mark.slow
def test_new_checkpoints_load_with_weights_only(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "train.epochs=1", "train.steps_per_epoch=3", "train.eval_every=3", "model.width=4",
                 f"train.out_dir={out}", "train.progress=false", "train.tensorboard=false"]) == 0
    state = torch.load(out / "checkpoints" / "latest.pt", weights_only=True)
    assert state["step"] == 3 and isinstance(state["rng"]["numpy"][1], torch.Tensor)


def test_an_old_checkpoint_is_refused_for_prediction_but_resumes(tmp_path, capsys):
    with pytest.raises(CheckpointError, match="more than tensors and plain values"):
        load_checkpoint(OLD)
    assert load_checkpoint(OLD, trusted=True)["step"] == 6
    (tmp_path / "x.npz").write_bytes(b"")
    assert main(["predict", "--checkpoint", str(OLD), str(tmp_path / "x.npz")]) != 0
    assert "weights_only=True" in capsys.readouterr().err


class Payload:
    """Stands for any object a file might smuggle in (unpickling it would run its class's code)."""


def test_a_file_with_arbitrary_objects_is_refused_for_prediction(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"step": 1, "model": {}, "extra": Payload()}, path)
    with pytest.raises(CheckpointError, match="weights_only=True"):
        load_checkpoint(path)
