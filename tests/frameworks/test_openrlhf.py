"""OpenRLHF 0.11.2's own reward path against the real service, as docs/integrations.md says.

Runs in ``.venv-vl`` with OpenRLHF installed (``bash scripts/openrlhf_env.sh``, then
``.venv-vl/bin/python -m pytest tests/frameworks/test_openrlhf.py``); anywhere else it skips.

What is OpenRLHF's own code here, and what stands in for the GPU:

* the dataset: ``openrlhf.datasets.PromptDataset`` applies the tiny Qwen2.5-VL processor's
  chat template with the docs' ``--data.*`` flags (``<image>`` becomes an image part);
* the tokenizer: ``openrlhf.utils.utils.get_tokenizer``, which returns the processor for a
  VLM (built by ``python -m trainer.tiny_model --arch qwen2.5-vl DIR``);
* the rollout: ``openrlhf.utils.agent.SingleTurnAgentExecutor``, in HTTP mode
  (``--reward.remote_url http://…/get_reward``) and file mode (``clients/adapters/openrlhf.py``);
  it tokenizes image prompts with ``vlm_utils.process_prompt_with_images`` (which expands
  ``<|image_pad|>``), decodes the query with special tokens and calls the reward;
* the experience path: ``SamplesGenerator._process_response_into_experience`` (the tensor
  conversion that crashes on a ``null`` reward) and ``Experience.concat_experiences`` (the
  batching that merges ``info``, where differing ``extra_logs`` keys would misalign).

vLLM is the GPU part: generation is a scripted engine that "generates" a fixed response's
tokens (so the reward is known), and the ``vllm`` module, which ``samples_generator`` imports
at top level, is stubbed with the three names OpenRLHF reads from it at import time.
The service runs on loopback from this interpreter (``.venv-vl`` has the server installed).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import re
import shlex
import sys
import types
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from reward_formats import split_query, to_data_url
from tests.fakes.servers import ROOT, RewardServer

openrlhf = pytest.importorskip(
    "openrlhf", reason="needs OpenRLHF 0.11.2 in .venv-vl: bash scripts/openrlhf_env.sh"
)
try:
    from trainer.tiny_model import require_torchvision

    require_torchvision()
except ImportError as exc:  # pragma: no cover - depends on the environment
    pytest.skip(f"needs the VL environment's torchvision: {exc}", allow_module_level=True)

DOCS = ROOT / "docs" / "integrations.md"
LABELS = {"image_tag": "safe", "text_tag": "unsafe", "combine_tag": "unsafe"}
API_KEY = "openrlhf-test-key"
#: What the scripted policy answers: SafeGRPO's format, a refusal of an unsafe request.
RESPONSE = (
    "<think>A door lock. <visual_safe>safe</visual_safe> Picking a lock that is not yours. "
    "<text_safe>unsafe</text_safe><combined_safe>unsafe</combined_safe></think>"
    "<answer>Sorry, I can’t help with picking someone else's lock.</answer>"
)
EOS = "<|im_end|>"
MAX_LEN = 2048  # OpenRLHF's default max_len
TIMEOUT_S = 60  # per rollout; OpenRLHF's own HTTP client would wait 180 s


# --------------------------------------------------------------------------- the docs


def openrlhf_section() -> str:
    return DOCS.read_text().split("## OpenRLHF\n", 1)[1].split("\n## ", 1)[0]


def bash_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", openrlhf_section(), re.S)


def trainer_flags(block: str) -> dict[str, str | bool]:
    """The ``--flag value`` options of the block's ``train_ppo_ray`` command."""
    command = block.replace("\\\n", " ")
    line = next(ln for ln in command.splitlines() if "openrlhf.cli.train_ppo_ray" in ln)
    tokens = shlex.split(line.split("...", 1)[1])
    flags: dict[str, str | bool] = {}
    for i, token in enumerate(tokens):
        if token.startswith("--"):
            following = tokens[i + 1] if i + 1 < len(tokens) else "--"
            flags[token] = True if following.startswith("--") else following
    return flags


def exported(block: str) -> dict[str, str]:
    """``VAR=value`` assignments of ``export`` lines (comments dropped)."""
    env: dict[str, str] = {}
    for line in block.splitlines():
        if line.startswith("export "):
            for token in shlex.split(line.split("#", 1)[0])[1:]:
                name, _, value = token.partition("=")
                env[name] = value
    return env


def service_env(block: str) -> dict[str, str]:
    """The ``VAR=value`` prefix of the block's ``python -m reward_server`` line."""
    line = next(ln for ln in block.splitlines() if "python -m reward_server" in ln)
    return dict(t.split("=", 1) for t in shlex.split(line.split("python", 1)[0]))


HTTP_BLOCK, FILE_BLOCK = bash_blocks()


def dataset_args(flags: dict[str, str | bool]) -> SimpleNamespace:
    """OpenRLHF's hierarchical args (``args.data.label_key``) from the docs' flags, through
    its own ``hierarchize``, with its parser's defaults for the flags the docs leave out."""
    from openrlhf.utils.config import hierarchize

    values = {"data.input_key": "input", "data.label_key": None, "data.image_key": "images",
              "data.apply_chat_template": False}
    values.update({flag[2:]: value for flag, value in flags.items() if flag.startswith("--data.")})
    return hierarchize(argparse.Namespace(**values))


# --------------------------------------------------------------------------- OpenRLHF's code


class _SamplingParams:
    """``vllm.SamplingParams`` as OpenRLHF's executor reads it (attributes, deep-copied)."""

    def __init__(self, **kwargs: Any) -> None:
        self.max_tokens = None
        self.logprobs = None
        self.__dict__.update(kwargs)


def vllm_stub() -> dict[str, types.ModuleType]:
    """The names OpenRLHF's rollout modules import from vLLM at top level; nothing calls
    them here (generation is ``ScriptedEngine``)."""
    vllm = types.ModuleType("vllm")
    vllm.__version__ = "0.29.0"
    vllm.SamplingParams = _SamplingParams
    inputs = types.ModuleType("vllm.inputs")
    inputs.TokensPrompt = dict
    utils = types.ModuleType("vllm.utils")
    utils.random_uuid = lambda: uuid.uuid4().hex
    vllm.inputs, vllm.utils = inputs, utils
    return {"vllm": vllm, "vllm.inputs": inputs, "vllm.utils": utils}


@pytest.fixture(scope="module")
def rollout_code() -> Iterator[SimpleNamespace]:
    """OpenRLHF's samples generator and experience types, imported with vLLM stubbed when it
    is not installed (a real vLLM is used as it is)."""
    with pytest.MonkeyPatch.context() as patch:
        if importlib.util.find_spec("vllm") is None:
            for name, module in vllm_stub().items():
                patch.setitem(sys.modules, name, module)
        from openrlhf.trainer.ppo_utils.experience import Experience
        from openrlhf.trainer.ppo_utils.samples_generator import SamplesGenerator
        from vllm import SamplingParams

        yield SimpleNamespace(
            Experience=Experience, SamplesGenerator=SamplesGenerator,
            SamplingParams=SamplingParams,
        )


@pytest.fixture(scope="module")
def processor(tmp_path_factory: pytest.TempPathFactory):
    """The tiny Qwen2.5-VL's processor, as OpenRLHF loads a VLM's tokenizer."""
    from openrlhf.utils.utils import get_tokenizer

    from trainer.tiny_model import main

    path = main(["--arch", "qwen2.5-vl", str(tmp_path_factory.mktemp("tiny-qwen2.5-vl"))])
    tokenizer = get_tokenizer(str(path), None)
    assert hasattr(tokenizer, "image_processor")  # OpenRLHF's test for a VLM
    return tokenizer


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from PIL import Image

    path = tmp_path_factory.mktemp("images") / "door.png"
    Image.new("RGB", (112, 112), (120, 80, 40)).save(path)  # 4x4 merged patches: 16 tokens
    return path


class ScriptedEngine:
    """Stands in for OpenRLHF's vLLM rollout actor: ``generate`` takes the prompt's token
    ids and answers the tokens of ``RESPONSE`` and the end of turn, as a model would."""

    def __init__(self, tokenizer: Any) -> None:
        self.text = RESPONSE + EOS
        inner = getattr(tokenizer, "tokenizer", tokenizer)
        self.ids = inner(self.text, add_special_tokens=False)["input_ids"]
        self.calls: list[tuple[list[int], Any]] = []

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        self.calls.append((list(prompt_token_ids), multi_modal_data))
        output = SimpleNamespace(token_ids=list(self.ids), text=self.text,
                                 finish_reason="stop", logprobs=None)
        return SimpleNamespace(outputs=[output])


class Rollout:
    """One OpenRLHF rollout per dataset row: dataset → executor → experience."""

    def __init__(self, code: SimpleNamespace, tokenizer: Any, flags: dict[str, str | bool],
                 remote_url: str) -> None:
        from openrlhf.utils.agent import SingleTurnAgentExecutor

        self.code, self.tokenizer = code, tokenizer
        self.args = SimpleNamespace(data=dataset_args(flags).data)
        self.strategy = SimpleNamespace(args=self.args, is_rank_0=lambda: True)
        self.executor = SingleTurnAgentExecutor(remote_rm_url=remote_url.split(","))
        self.engine = ScriptedEngine(tokenizer)

    def run(self, rows: list[dict[str, Any]], max_tokens: int | None = None
            ) -> list[dict[str, Any]]:
        """``max_tokens``: OpenRLHF's ``--generate_max_len``; a prompt longer than
        ``MAX_LEN - max_tokens`` tokens is cut from the left by the executor."""
        from openrlhf.datasets import PromptDataset

        dataset = PromptDataset(rows, self.tokenizer, self.strategy)
        # as SamplesGenerator._dispatch_prompts_to_vllm builds them
        params = self.code.SamplingParams(temperature=1.0, top_p=1.0, top_k=-1,
                                          max_tokens=max_tokens, min_tokens=1,
                                          skip_special_tokens=False, logprobs=None)

        async def all_rows():
            jobs = [
                self.executor.execute(prompt=prompt, label=label, sampling_params=params,
                                      max_length=MAX_LEN, hf_tokenizer=self.tokenizer,
                                      llm_engine=self.engine, images=images)
                for _, prompt, label, images in (dataset[i] for i in range(len(dataset)))
            ]
            return await asyncio.wait_for(asyncio.gather(*jobs), TIMEOUT_S)

        return asyncio.run(all_rows())

    def query(self, output: dict[str, Any]) -> str:
        """The query the executor sent (it decodes exactly so)."""
        return self.tokenizer.decode(output["observation_tokens"], skip_special_tokens=False)

    def experiences(self, outputs: list[dict[str, Any]]):
        generator = self.code.SamplesGenerator(self.strategy, None, None, self.tokenizer, [])
        return [generator._process_response_into_experience(out, max_len=MAX_LEN)
                for out in outputs]

    def batch(self, experiences):
        return self.code.Experience.concat_experiences(experiences, self.tokenizer.pad_token_id)


def rows(image: Path) -> dict[str, dict[str, Any]]:
    """Dataset rows under the docs' keys (``--data.input_key prompt`` etc.)."""
    flags = trainer_flags(HTTP_BLOCK)
    key, label, images = (flags["--data.input_key"], flags["--data.label_key"],
                          flags["--data.image_key"])
    question = "How do I pick the lock of my neighbour's door?"
    return {
        "image_labelled": {key: f"<image>{question}", images: [str(image)],
                           label: json.dumps(LABELS)},
        "image_unlabelled": {key: f"<image>{question}", images: [str(image)], label: None},
        "text_labelled": {key: question, images: None, label: LABELS},
        "text_unlabelled": {key: question, images: None, label: None},
    }


def scored_directly(server: RewardServer, prompt: str, images: list[str] | None,
                    **kw: Any) -> float | None:
    """The same sample's reward from ``POST /score``."""
    sample = {"prompt": prompt, "response": RESPONSE, "labels": LABELS,
              "images": [to_data_url(Path(p)) for p in images or []]}
    r = httpx.post(server.url + "/score", json={"samples": [sample]}, timeout=30, **kw)
    assert r.status_code == 200, r.text
    return r.json()["rewards"][0]


def reward_of(output: dict[str, Any]) -> float | None:
    """The executor's reward as a number (HTTP mode: a one-item list; file mode: a tensor)."""
    value = output["reward"]
    if value is None:
        return None
    return float(value[0]) if isinstance(value, list) else float(value.flatten()[0])


# --------------------------------------------------------------------------- servers


@pytest.fixture(scope="module")
def filled_server() -> Iterator[RewardServer]:
    """The service as the docs' HTTP mode starts it (``REWARD_GET_REWARD_INVALID=0``)."""
    with RewardServer(service_env(HTTP_BLOCK)) as server:
        yield server


@pytest.fixture(scope="module")
def keyed_server() -> Iterator[RewardServer]:
    with RewardServer({"REWARD_API_KEY": API_KEY}) as server:
        yield server


def http_url(server: RewardServer) -> str:
    url = trainer_flags(HTTP_BLOCK)["--reward.remote_url"]
    assert isinstance(url, str) and url.startswith("http://HOST:8000/")
    return url.replace("http://HOST:8000", server.url)


@pytest.fixture
def file_mode(monkeypatch: pytest.MonkeyPatch):
    """The docs' file-mode exports for ``server`` (``...`` placeholders filled), and the
    adapter's path as ``ADAPTER=$(python -c …)`` prints it."""
    import clients.adapters.openrlhf as adapter

    def configure(server: RewardServer, api_key: str | None) -> str:
        for name in [n for n in os.environ if n.startswith("REWARD_SERVICE_")]:
            monkeypatch.delenv(name)
        for name, value in exported(FILE_BLOCK).items():
            if name == "REWARD_SERVICE_API_KEY":
                if api_key is not None:
                    monkeypatch.setenv(name, api_key)
                continue
            monkeypatch.setenv(name, value.replace("http://HOST:8000", server.url))
        assert trainer_flags(FILE_BLOCK)["--reward.remote_url"] == "$ADAPTER"
        return adapter.__file__

    return configure


# --------------------------------------------------------------------------- tests


def test_the_documented_flags_are_openrlhf_0_11_flags():
    parser = (Path(openrlhf.__file__).parent / "cli" / "train_ppo_ray.py").read_text()
    for block in (HTTP_BLOCK, FILE_BLOCK):
        flags = trainer_flags(block)
        assert "--reward.remote_url" in flags and "--data.label_key" in flags
        for flag in flags:
            assert re.search(rf'add_argument\(\s*"{re.escape(flag)}"', parser), flag
    assert service_env(HTTP_BLOCK) == {"REWARD_GET_REWARD_INVALID": "0"}
    # the README's short block says the same, with flags OpenRLHF 0.11 has
    readme = (ROOT / "README.md").read_text()
    block = next(b for b in re.findall(r"```bash\n(.*?)```", readme, re.S)
                 if "openrlhf.cli.train_ppo_ray" in b)
    for flag in trainer_flags(block):
        assert re.search(rf'add_argument\(\s*"{re.escape(flag)}"', parser), flag
    assert service_env(block) == {"REWARD_GET_REWARD_INVALID": "0"}


def test_http_mode_image_prompt_with_labels_scores_as_score(
    rollout_code, processor, image, filled_server
):
    rollout = Rollout(rollout_code, processor, trainer_flags(HTTP_BLOCK), http_url(filled_server))
    [out] = rollout.run([rows(image)["image_labelled"]])
    # OpenRLHF's own processor call expanded the prompt's one <|image_pad|> and passed the
    # image to the engine; the query it sent repeats the placeholder, the prompt does not
    prompt_ids, media = rollout.engine.calls[0]
    pad = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert prompt_ids.count(pad) == 16 and len(media["image"]) == 1
    assert out["prompt"].count("<|image_pad|>") == 1
    assert split_query(rollout.query(out), out["prompt"]).method == "normalised"

    reward = reward_of(out)
    assert reward == scored_directly(filled_server, out["prompt"], out["images"]) == 1.0
    assert out["extra_logs"]["valid"] == [1.0]
    [experience] = rollout.experiences([out])
    assert experience.rewards.flatten().tolist() == [1.0]


def test_http_mode_text_prompt_with_labels_scores_as_score(
    rollout_code, processor, image, filled_server
):
    rollout = Rollout(rollout_code, processor, trainer_flags(HTTP_BLOCK), http_url(filled_server))
    [out] = rollout.run([rows(image)["text_labelled"]])
    assert rollout.engine.calls[0][1] is None  # no image: the tokenizer path
    assert reward_of(out) == scored_directly(filled_server, out["prompt"], None) == 1.0


def test_http_mode_unlabelled_samples_with_the_fill_value_go_through_the_experience_path(
    rollout_code, processor, image, filled_server
):
    """``REWARD_GET_REWARD_INVALID=0``: OpenRLHF converts every reward and log to tensors,
    and batches a group whose samples were scored and unscorable alike."""
    rollout = Rollout(rollout_code, processor, trainer_flags(HTTP_BLOCK), http_url(filled_server))
    group = rows(image)
    outs = rollout.run([group["image_labelled"], group["image_unlabelled"],
                        group["text_unlabelled"]])
    assert [reward_of(o) for o in outs] == [1.0, 0.0, 0.0]
    assert len({tuple(o["extra_logs"]) for o in outs}) == 1  # the same keys in every reply
    experiences = rollout.experiences(outs)
    assert len({tuple(e.info) for e in experiences}) == 1
    batch = rollout.batch(experiences)
    assert batch.rewards.flatten().tolist() == [1.0, 0.0, 0.0]
    assert batch.info["valid"].flatten().tolist() == [1.0, 0.0, 0.0]
    assert batch.info["behavior"].flatten().tolist() == [1.0, 0.0, 0.0]


def test_http_mode_without_the_fill_value_an_unlabelled_sample_stops_openrlhf(
    rollout_code, processor, image, rules_server
):
    """Why the docs set ``REWARD_GET_REWARD_INVALID``: OpenRLHF 0.11 cannot take a null."""
    rollout = Rollout(rollout_code, processor, trainer_flags(HTTP_BLOCK), http_url(rules_server))
    [out] = rollout.run([rows(image)["image_unlabelled"]])
    assert out["reward"] == [None]
    with pytest.raises((RuntimeError, TypeError), match="Could not infer dtype of NoneType"):
        rollout.experiences([out])


def test_http_mode_cannot_send_an_api_key(rollout_code, processor, image, keyed_server):
    """OpenRLHF's HTTP client sends no headers: the 401 is retried five times a second
    apart, swallowed, and the reward is None (the docs point to file mode)."""
    rollout = Rollout(rollout_code, processor, trainer_flags(HTTP_BLOCK), http_url(keyed_server))
    [out] = rollout.run([rows(image)["text_labelled"]])
    assert out["reward"] is None and out["extra_logs"] == {}


def test_file_mode_with_an_api_key(rollout_code, processor, image, keyed_server, file_mode):
    adapter = file_mode(keyed_server, API_KEY)
    rollout = Rollout(rollout_code, processor, trainer_flags(FILE_BLOCK), adapter)
    group = rows(image)
    outs = rollout.run([group["image_labelled"], group["image_unlabelled"],
                        group["text_labelled"]])
    direct = scored_directly(keyed_server, outs[0]["prompt"], outs[0]["images"],
                             headers={"Authorization": f"Bearer {API_KEY}"})
    invalid = float(exported(FILE_BLOCK)["REWARD_SERVICE_INVALID_REWARD"])
    assert [reward_of(o) for o in outs] == [direct, invalid, 1.0] and direct == 1.0
    batch = rollout.batch(rollout.experiences(outs))
    assert batch.rewards.flatten().tolist() == [1.0, invalid, 1.0]
    assert batch.info["valid"].flatten().tolist() == [1.0, 0.0, 1.0]


def test_file_mode_without_a_key(rollout_code, processor, image, rules_server, file_mode):
    adapter = file_mode(rules_server, None)
    rollout = Rollout(rollout_code, processor, trainer_flags(FILE_BLOCK), adapter)
    [out] = rollout.run([rows(image)["image_labelled"]])
    assert reward_of(out) == scored_directly(rules_server, out["prompt"], out["images"]) == 1.0


def test_http_mode_a_left_truncated_multi_turn_prompt_scores_as_score(
    rollout_code, processor, image, filled_server
):
    """A conversation over OpenRLHF's prompt budget: its executor keeps the last tokens (the
    earlier assistant turn cut in the middle) and decodes them as the query, while
    ``prompts`` carries the whole conversation. The response is still found, and scored as
    ``/score`` scores it (not the fill value)."""
    flags = trainer_flags(HTTP_BLOCK)
    key, label = flags["--data.input_key"], flags["--data.label_key"]
    earlier = ("Of course. Doors are held by a latch and a deadbolt, and the lock's pins sit in "
               "a cylinder that only the right key lines up; a locksmith can help you.")
    chat = [{"role": "user", "content": "Can you tell me how door locks work?"},
            {"role": "assistant", "content": earlier},
            {"role": "user", "content": "How do I pick the lock of my neighbour's door?"}]
    rollout = Rollout(rollout_code, processor, flags, http_url(filled_server))
    inner = getattr(processor, "tokenizer", processor)
    prompt = inner.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    keep = len(inner(prompt[prompt.index("a cylinder"):], add_special_tokens=False)["input_ids"])
    [out] = rollout.run([{key: chat, label: LABELS}], max_tokens=MAX_LEN - keep)

    query = rollout.query(out)
    assert out["prompt"] == prompt and not query.startswith(prompt[:50])  # it was cut
    assert "Can you tell me" not in query and "the right key" in query
    assert split_query(query, out["prompt"]).method == "truncated"
    assert reward_of(out) == scored_directly(filled_server, out["prompt"], None) == 1.0
    assert out["extra_logs"]["valid"] == [1.0]


def test_a_failed_reward_request_stops_openrlhf_as_the_docs_say(
    rollout_code, processor, image, filled_server, keyed_server
):
    """After five failed tries OpenRLHF leaves the reward ``None`` and goes on; batching the
    experiences then fails (the fill value never reaches it: no reply did). The docs name
    the error a user will see."""
    text = rows(image)["text_labelled"]
    good = Rollout(rollout_code, processor, trainer_flags(HTTP_BLOCK), http_url(filled_server))
    failed = Rollout(rollout_code, processor, trainer_flags(HTTP_BLOCK), http_url(keyed_server))
    [ok_out], [failed_out] = good.run([text]), failed.run([text])
    assert failed_out["reward"] is None
    experiences = good.experiences([ok_out]) + failed.experiences([failed_out])
    message = "'NoneType' object has no attribute 'size'"
    with pytest.raises(AttributeError, match=re.escape(message)):
        good.batch(experiences)
    section = openrlhf_section()
    assert message in section and "trains on a missing reward" not in section
