"""``python -m trainer.tiny_model``'s ``--arch`` in the main environment: Qwen2 stays the
default and text-only, and ``--arch qwen2.5-vl`` without a working torchvision stops with a
message that says where to run it, before writing anything. The VL model itself is tested in
tests/vl/ (the VL environment)."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.tiny_model import VL_SPECIAL, main, require_torchvision


def test_default_arch_is_the_text_only_qwen2(tmp_path: Path, capsys):
    pytest.importorskip("transformers")
    from transformers import AutoConfig, AutoTokenizer

    default = main([str(tmp_path / "default")])
    explicit = main(["--arch", "qwen2", str(tmp_path / "explicit")])

    assert "tiny Qwen2 written to" in capsys.readouterr().out
    assert AutoConfig.from_pretrained(default).model_type == "qwen2"
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (default / name).read_bytes() == (explicit / name).read_bytes(), name
    vocab = AutoTokenizer.from_pretrained(default).get_vocab()
    assert not set(VL_SPECIAL) & set(vocab)
    assert not (default / "processor_config.json").exists()


def test_vl_arch_without_torchvision_says_where_to_run(tmp_path: Path, capsys):
    try:
        require_torchvision()
    except ImportError:
        pass
    else:
        pytest.skip("torchvision works here: tests/vl builds the VL model")

    with pytest.raises(SystemExit) as exit_info:
        main(["--arch", "qwen2.5-vl", str(tmp_path / "vl")])

    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "torchvision" in err
    assert "bash scripts/vl_env.sh" in err
    assert not (tmp_path / "vl").exists()
