"""``python -m trainer.evaluate``: safety benchmarks for a policy, scored by a separate
evaluation judge. The command line is documented in README.md and in ``trainer.eval``
(the package that does the work: prompt, judge client, verdict parsing, metrics, report).
"""

from trainer.eval.cli import main, make_parser

__all__ = ["main", "make_parser"]

if __name__ == "__main__":
    parser = make_parser()
    script_args, policy_args = parser.parse_args_and_config()
    main(script_args, policy_args)
