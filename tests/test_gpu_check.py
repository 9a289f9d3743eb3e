"""benchmarks/gpu_check.py's CPU-runnable parts: every section runs and the report is written (the timings and
the CUDA-only checks wait for a GPU)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import gpu_check  # noqa: E402


def test_synthetic_data_is_cifar_shaped(tmp_path):
    import numpy as np

    with np.load(gpu_check.synthetic_cifar_lt(tmp_path, per_class=20)) as z:
        assert z["x_train"].shape == (200, 32, 32, 3) and z["x_train"].dtype == np.uint8
        assert sorted(set(z["y_test"].tolist())) == list(range(10))


def test_without_a_gpu_it_says_what_it_needs(capsys, monkeypatch):
    monkeypatch.setattr(gpu_check.torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit):
        gpu_check.main(["--device", "cuda"])
    assert "needs one CUDA GPU" in capsys.readouterr().err


@pytest.mark.slow
def test_quick_cpu_run_writes_every_section(tmp_path):
    out = tmp_path / "gpu.json"
    gpu_check.main(["--device", "cpu", "--quick", "--out", str(out)])
    report = json.loads(out.read_text())
    assert [r["method"] for r in report["steps"]] == ["semi"] and not report["errors"]
    assert report["bank_sync_free_equals_nonzero"] is True
    assert report["ddp_one_process"]["ok"] and report["ddp_one_process"]["steps"] == 5
    assert report["loader_images_per_s"]["0"] > 0
    assert report["device_augmentation"]["equals_loader"] is True and report["device_augmentation"]["images_per_s"] > 0
