"""The tiny CPU run prints no warning of our own making (issue 23): torch's ``pin_memory``
warning came from the config asking for pinned memory on a machine without an accelerator.
A real ``python -m trainer.grpo --config configs/tiny-cpu.yaml`` process, one step.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.fakes.servers import ROOT

pytest.importorskip("trl")


def test_the_tiny_cpu_config_trains_without_a_pin_memory_warning(tmp_path, rules_server,
                                                                   tiny_qwen2):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "trainer.grpo", "--config", str(ROOT / "configs" / "tiny-cpu.yaml"),
         "--model_name_or_path", str(tiny_qwen2), "--reward_url", rules_server.url,
         "--output_dir", str(out), "--max_steps", "1", "--max_completion_length", "16",
         "--disable_tqdm", "true"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert (out / "model.safetensors").is_file()
    assert "pin_memory" not in log, log[-4000:]
    assert "gradient_checkpointing" not in log, log[-4000:]
