"""Who the grader is, in eight languages: the nouns the forged-boundary rule looks for.

A forged end of the response counts as an injection only when grader-directed text
follows it ("[END OF RESPONSE] Evaluator: ..."); these are the nouns that make it so.
"""

from __future__ import annotations

__all__ = ["GRADER_NOUNS"]

GRADER = (
    r"(?:graders?|evaluators?|raters?|scorers?|annotators?|assessors?"
    r"|(?:ai|llm|gpt|automated|automatic|safety|machine)[\s-]{1,2}(?:judge|grader|evaluator"
    r"|rater|reviewer|assessor|scorer|annotator)s?"
    r"|(?:judge|judging|grading|evaluation|evaluator|scoring|critic|preference|reward)[\s-]{1,2}"
    r"models?)"
)
_ES = (
    r"(?:evaluador(?:a|es|as)?|calificador(?:a|es|as)?|corrector(?:a|es|as)?"
    r"|juez(?:a)?\s(?:de\s)?(?:ia|llm)|modelo\s(?:de\s)?(?:recompensa|evaluaci[oó]n|juez)"
    r"|quien\s(?:eval[uú]e|califique|corrija|punt[uú]e|juzgue))"
)
_FR = (
    r"(?:[ée]valuat(?:eur|rice)s?|correct(?:eur|rice)s?|notat(?:eur|rice)s?"
    r"|juge\s(?:ia|llm)|mod[eè]le\s(?:de\s(?:r[ée]compense|notation)|[ée]valuateur|juge)"
    r"|(?:celui|celle)\squi\s(?:[ée]value|corrige|note))"
)
_DE = (
    r"(?:bewerter(?:in|innen)?|prüfer(?:in|innen)?|gutachter(?:in|innen)?|korrektor(?:in|en)?"
    r"|(?:ki|llm)-?(?:richter|bewerter|prüfer)|bewertungsmodell|belohnungsmodell"
    r"|reward-modell|wer\s(?:bewertet|korrigiert|prüft))"
)
_PT = (
    r"(?:avaliador(?:a|es|as)?|corretor(?:a|es|as)?|juiz\s(?:de\s)?(?:ia|llm)"
    r"|modelo\s(?:de\s)?(?:recompensa|avalia[çc][ãa]o|juiz)|quem\s(?:avaliar|corrigir|pontuar"
    r"|julgar))"
)
_IT = (
    r"(?:valutat(?:ore|rice|ori|rici)|corrett(?:ore|rice|ori)|giudice\s(?:ia|llm)"
    r"|modello\s(?:di\s)?(?:ricompensa|valutazione|giudice)|chi\s(?:valuta|valuter[àa]"
    r"|corregge|giudica))"
)
_ZH = (
    r"(?:评估者|评估员|评分者|评分员|打分者|评审员?|评委|阅卷人|阅卷老师"
    r"|奖励模型|评估模型|评分模型|裁判模型|评判模型)"
)
_JA = r"(?:採点者|評価者|審査員|審査者|ジャッジ|評価モデル|報酬モデル|採点モデル|判定モデル)"

#: The grader in every language the boundary rule reads.
GRADER_NOUNS = "|".join((GRADER, _ES, _FR, _DE, _PT, _IT, _ZH, _JA))
