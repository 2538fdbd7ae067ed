"""Tokens and stop words shared by the `local` search and the extractive answerer."""

from __future__ import annotations

import re
import unicodedata

WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?")

# Kept as text (one word after another) so the lists stay readable; split below.
_EN = """
a about above after again against all also am an and any are aren as at be because been
before being below between both but by can could did didn do does doesn doing don down
during each few for from further get gets got had happen happened happens has have
having he hello her here hers herself hi him himself his how i if in into is isn it its
itself just know let lets many may me might more most much must my myself need no nor
not now of off on once one ones only or other our ours ourselves out over own please s
same shall she should so some such t tell than thank thanks that the their theirs them
themselves then there these they this those through to too under until up use used using
very want was way ways we were what when where which while who whom why will with would
you your yours yourself yourselves
"""
_FR = """
a ai aie aient aies ait alors as au aucun aussi autre aux avec avez avoir avons ayant
bon bonjour c car ce ceci cela celle celles celui ces cet cette ceux chaque ci comme
comment d dans de des dois doit doivent du elle elles en encore est et etaient
etait etant ete etre eu eux faire fais fait faut il ils j je l la le les leur leurs lui
m ma mais me meme merci mes moi mon n ne ni nos notre nous on ont ou par pas peu peut
peut-on peux plus pour pourquoi puis qu quand que quel quelle quelles quels qui
quoi s sa sans se sera ses si sien son sont sous soyez suis sur ta te tes toi ton tous
tout toute toutes tres tu un une veux vos votre voudrais vous y
"""
STOP_WORDS_EN = frozenset(_EN.split())
STOP_WORDS_FR = frozenset(_FR.split())
STOP_WORDS = STOP_WORDS_EN | STOP_WORDS_FR


def fold(text: str) -> str:
    """Lowercase without accents, so that "données" and "donnees" are one word."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def words(text: str) -> list[str]:
    """Folded words; an elision (l'index, d'un) keeps only the word after the apostrophe."""
    out = []
    for match in WORD.finditer(fold(text)):
        word = match.group(0).replace("’", "'")
        head, sep, tail = word.partition("'")
        if sep and len(head) <= 2:  # l'index, d'un, qu'il
            word = tail
        out.append(word)
    return out


def content_words(text: str) -> list[str]:
    """Words without stop words (English and French: a question may not be in the page
    language)."""
    return [w for w in words(text) if w not in STOP_WORDS]


def stem(word: str) -> str:
    """Light suffix stripping for ranking sentences, English and French alike (the same
    rules run on the question and the text, so only consistency matters): batches ->
    batch, statuses -> status, named / names / naming -> nam, cancelled -> cancel,
    annuler / annulez / annulé -> annul."""
    if len(word) <= 3:
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith(("sses", "ches", "shes", "xes", "uses")):
        word = word[:-2]
    elif word.endswith(("s", "x")) and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ing", "ed", "er", "ez"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            if len(word) >= 4 and word[-1] == word[-2] and word[-1] not in "sl":
                word = word[:-1]  # stopped -> stop, running -> run
            elif word.endswith("ll") and len(word) > 5:
                word = word[:-1]  # cancelled -> cancel
            break
    if word.endswith("e") and len(word) >= 4:
        word = word[:-1]
    return word
