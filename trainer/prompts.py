"""Instructions the trainer adds to prompts, written for this project.

- ``SAFETY_THINKING_INSTRUCTION``: SafeGRPO's step-guided safety thinking (arXiv 2511.12982):
  describe the image, judge the image, the request and the two together, sum up, emit the three
  tags, then ``</think>`` and ``<answer>…</answer>``. The rule profiles (``safegrpo``,
  ``safegrpo_plus``, and the rules half of ``hybrid``) score exactly this format.
- ``THINK_ANSWER_INSTRUCTION``: the plain ``<think>…</think><answer>…</answer>`` layout the
  SaFeR-VLM judge profile (``safer_vlm``) expects.
- ``REFLECTION_INSTRUCTION`` / ``CORRECTION_INSTRUCTION``: the two turns of the safety-aware
  rollout (SaFeR-VLM, arXiv 2510.06871): the policy criticises its own unsafe answer, then
  writes the corrected one. With a process profile, ``STEP_HINT`` follows the reflection
  instruction and names (and quotes) the first unsafe step of the reasoning
  (``trainer.steps.reflection_instruction``).
"""

from __future__ import annotations

_STEPS = """\
Before replying, reason step by step inside <think> and </think>:
1. {describe}
2. {judge_image}
3. Judge the request on its own and write <text_safe>safe</text_safe> or \
<text_safe>unsafe</text_safe>.
4. Judge {together} and write \
<combined_safe>safe</combined_safe> or <combined_safe>unsafe</combined_safe>.
5. Sum up what this means for your reply.
Then write </think> and give your reply inside <answer> and </answer>. If the combined verdict \
is unsafe, decline briefly and, where it helps, point to a safe alternative; if it is safe, answer \
helpfully and completely. Write nothing after </answer>."""

SAFETY_THINKING_INSTRUCTION = _STEPS.format(
    describe="Describe what the image shows.",
    judge_image="Judge the image on its own and write <visual_safe>safe</visual_safe> or "
    "<visual_safe>unsafe</visual_safe>.",
    together="the image and the request together (two harmless parts can make a harmful whole)",
)

# The same five steps for a request that comes without a picture.
SAFETY_THINKING_INSTRUCTION_NO_IMAGE = _STEPS.format(
    describe="Note that no image is given.",
    judge_image="With no image to judge, write <visual_safe>safe</visual_safe>.",
    together="the request as a whole, in its full context,",
)

THINK_ANSWER_INSTRUCTION = """\
Think it through inside <think> and </think>: what is shown, what is being asked, and whether \
answering could cause harm. Then give your reply inside <answer> and </answer>. Decline only what \
is actually harmful, and answer harmless requests helpfully and completely."""

REFLECTION_INSTRUCTION = """\
Review your previous response for safety before anything else. Taking the image and the request \
together: does the response help with something harmful, dangerous, illegal or unethical? Does it \
refuse something that is in fact harmless? Do its reasoning and any safety judgements match what \
is really shown and asked? Write a short critique of what is wrong and what a safe, helpful \
response would do instead. Do not write the corrected response yet."""

STEP_HINT = """\
A safety review found the first unsafe step of your reasoning: step {index}{quoted}. Begin your \
critique with that step."""

CORRECTION_INSTRUCTION = """\
Now respond to the original request again, fixing every problem your critique found. Follow the \
original instructions exactly, including the required format: reasoning inside <think> and \
</think>, then the reply inside <answer> and </answer>. Write only the corrected response."""

INSTRUCTIONS = {
    "safegrpo": SAFETY_THINKING_INSTRUCTION,
    "think_answer": THINK_ANSWER_INSTRUCTION,
    "none": None,
}


def instruction_for(choice: str, profile: str | None) -> str | None:
    """Which instruction to add, by the ``thinking_instruction`` argument and the profile.

    ``auto`` adds the plain think/answer layout for the judge-only profile ``safer_vlm`` and
    SafeGRPO's step-guided instruction for everything else (the rule profiles, ``hybrid``, the
    server's default, custom profiles): its format also satisfies the judge.

    >>> instruction_for("auto", "safer_vlm") == THINK_ANSWER_INSTRUCTION
    True
    >>> instruction_for("auto", "safegrpo_plus") == SAFETY_THINKING_INSTRUCTION
    True
    >>> instruction_for("none", "safegrpo") is None
    True
    """
    if choice == "auto":
        choice = "think_answer" if profile == "safer_vlm" else "safegrpo"
    if choice not in INSTRUCTIONS:
        raise ValueError(
            f"thinking_instruction={choice!r}: expected one of {['auto', *INSTRUCTIONS]}"
        )
    return INSTRUCTIONS[choice]
