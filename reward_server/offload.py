"""A large request's CPU work runs in a worker thread, so no request holds the event loop.

The service's rule: work on the event loop is linear in the request's size, bounded by a
limit checked before the work, and no request holds the loop for more than a few
milliseconds. Rules scoring, the injection detector, judge prompt rendering and query
splitting are all linear, but adversarial text costs them about a microsecond a character
(a 64K-character answer of repeated "I " spends some 34 ms in the refusal detector's
regexes), so inline, one 1,024-sample request would stall every other request, ``/health``
included, for half a minute.

So each of them passes through ``run_sized`` with the number of characters it is about to
read. Up to ``INLINE_CHARS`` the work runs inline: a thread hop (tens of microseconds)
would cost more than the work, and the rules hot path (a GRPO group of a few short
answers) pays no hop. Above it the work runs in a worker thread
(``asyncio.to_thread``, which takes the request's context, and so its request id, along);
the event loop gets the GIL back at least every switch interval (5 ms), so ``/health``
keeps answering while it runs.

What runs this way must not touch the event loop or shared mutable state: whether it ran
inline or in a thread can never change its result.

Memory: glibc gives every thread that allocates its own malloc arena, and by default a large
block freed once raises the size below which blocks come from an arena rather than from
``mmap``. So a 32 MB body parsed in a worker thread left its pages in that thread's arena
after the request ended: five such requests kept 70 MB more than before them.
:func:`return_large_blocks` fixes the threshold at 1 MiB, so every block of that size or
more is mapped on its own and returned to the system when freed, whichever thread made it.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
from collections.abc import Callable, Iterable
from typing import ParamSpec, TypeVar

from reward_server.domain import Sample

__all__ = ["INLINE_CHARS", "return_large_blocks", "run_sized", "text_chars"]

P = ParamSpec("P")
T = TypeVar("T")

#: Characters of text a request's CPU work may read inline. At ~0.15 µs a character for
#: ordinary text that is ~2.5 ms, and ~20 ms for the worst adversarial text measured.
INLINE_CHARS = 16 * 1024


def text_chars(samples: Iterable[Sample]) -> int:
    """The characters of text in ``samples``, prompts and responses: what CPU work reads.

    >>> text_chars([Sample(prompt="ab", response="cde")])
    5
    """
    total = 0
    for sample in samples:
        prompt = sample.prompt
        total += len(sample.response) + (
            len(prompt) if isinstance(prompt, str) else sum(len(m.text) for m in prompt)
        )
    return total


async def run_sized(chars: int, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args, **kwargs)``, inline when it reads at most ``INLINE_CHARS`` characters
    (without yielding to the event loop), else in a worker thread."""
    if chars <= INLINE_CHARS:
        return fn(*args, **kwargs)
    return await asyncio.to_thread(fn, *args, **kwargs)


#: glibc's ``mallopt`` parameter for the mmap threshold.
_M_MMAP_THRESHOLD = -3


def return_large_blocks(threshold: int = 1 << 20) -> bool:
    """Have glibc map every allocation of ``threshold`` bytes or more on its own (see the
    module docstring); ``False`` where there is no glibc (the setting is then the system's)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold))
