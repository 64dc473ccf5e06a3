"""Judge backends, one per ``REWARD_JUDGE_BACKEND`` value; heavy libraries load lazily.

Module names avoid the libraries they wrap (``hf``, not ``transformers``; ``vllm_engine``,
not ``vllm``; ``openai_compat``, not ``openai``) so ``import vllm`` inside them means vLLM.
"""

#: ``REWARD_JUDGE_BACKEND`` value -> ``module:class`` implementing it.
BACKENDS: dict[str, str] = {
    "transformers": "reward_server.judge.backends.hf:HFBackend",
    "vllm": "reward_server.judge.backends.vllm_engine:VLLMBackend",
    "openai": "reward_server.judge.backends.openai_compat:OpenAIBackend",
}
