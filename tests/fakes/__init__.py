"""Stand-ins shared by the tests: real servers on loopback ports and scripted far ends.

* ``http_server``: ``FakeHTTPServer``, the one fake HTTP server (real HTTP on 127.0.0.1,
  answers from a test function, records requests, stop/start like a dying peer).
* ``score_replies``: ``POST /score`` bodies in the contract's shape, for fakes that play
  the reward service.
* ``scripted_openai``: an OpenAI-compatible judge (on ``FakeHTTPServer``) with scripted
  replies, for the service's judge and the trainer's evaluation; it can also hang (accept
  connections, answer nothing) until resumed.
* ``fixed_verdict_judge``: an in-process judge engine that returns one fixed verdict.
* ``manual_clock``: ``ManualClock``, time that moves only when a test advances it (for
  deadlines, e.g. the micro-batcher's), and ``settle``, a loop-turn-bounded wait.
* ``servers``: the reward service under uvicorn and a throwaway redis-server, as real
  processes (``RewardServer``, ``RedisServer``, ``free_port``).
"""
