"""Moved to ``trainer.tiny_model`` (``python -m trainer.tiny_model OUT``); kept for old imports."""

from trainer.tiny_model import (  # noqa: F401
    CHAT_TEMPLATE,
    build_tiny_qwen2,
    build_tiny_qwen2_5_vl,
    build_tokenizer,
)
