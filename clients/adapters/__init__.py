"""Adapters of the reward service to RL trainers: ``trl``, ``verl``, ``openrlhf``.

Each is a plain module with no import of its trainer, so it loads where the trainer is not
installed (and the tests run without verl or OpenRLHF).
"""
