"""A probe on the Qwen2.5-VL vision tower, shared by the VL tests."""

from __future__ import annotations

from typing import Any

VISION_TOWER = "Qwen2_5_VisionTransformerPretrainedModel"


class VisionTowerLog:
    """The pixels of every call of the Qwen2.5-VL vision tower, recorded by a global forward
    pre-hook: the model is loaded inside a sampler or a judge backend, so the tests have no
    handle on it."""

    def __init__(self) -> None:
        self.pixels: list[Any] = []

    def __call__(self, module, args) -> None:
        if type(module).__name__ == VISION_TOWER:
            self.pixels.append(args[0].detach().cpu().clone())

    def __enter__(self) -> VisionTowerLog:
        from torch.nn.modules.module import register_module_forward_pre_hook

        self.handle = register_module_forward_pre_hook(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.remove()
