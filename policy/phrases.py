"""Phrase rules with weights, a score and a threshold.

A phrase file (`policy/data/promotion.txt` and the like) holds one phrase
a line, a regular expression over normalised text (NFKC, lower case, one
paragraph a line), with its weight in front:

    @currency = (?:€|£|¥|dollars?)    a macro, used as {currency} below
    3 coupon codes?                   weight 3
    3! follow us on instagram         `!`: counts even next to a negation
    -2 thank you for your review      a negative weight lowers the score

Each phrase counts once however often it occurs. A match does not count
when a negation ("not", "cannot", "keine", "ne ... pas", "no", "non",
"不能", "できません", ... from `negations.txt`) stands near it in the same
clause (up to the next comma or sentence end) and no contrast ("but",
"aber", "mais", ... from `contrasts.txt`) separates them: "this item is
not on sale any more" and "we cannot refund via PayPal" decline; they do
not offer. A message whose score reaches the threshold breaks the rule;
the strongest match is the excerpt.

Only the phrases whose needed word pieces (`policy/literals.py`) occur
among the message's distinct words are run at all.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from policy.datafiles import DataFiles
from policy.literals import required_literals

_MACRO = re.compile(r"^@(\w+)\s*=\s*(.+)$")
_LINE = re.compile(r"^(-?\d+(?:\.\d+)?)(!?)\s+(.+)$")
# A negation reaches only to the next comma or sentence end: "No problem,
# use code X" still offers a code.
_CLAUSE_END = re.compile(r"[.!?;,。！？；，、\n]")
_PARAGRAPH = re.compile(r"\n[ \t\r]*\n")
BEFORE, AFTER = 50, 25


class PhraseError(ValueError):
    """A phrase file has a line that is not `weight pattern` or a bad pattern."""


@dataclass(frozen=True)
class Phrase:
    weight: float
    ignores_negation: bool
    pattern: re.Pattern
    needs: frozenset[str] | None = None  # one of these is in every match (`policy/literals.py`)


@dataclass(frozen=True)
class Score:
    total: float
    excerpt: str


def normalise(text: str) -> str:
    """NFKC, lower case, runs of spaces and single line breaks as one space, paragraphs as lines."""
    text = unicodedata.normalize("NFKC", text).lower()
    return "\n".join(" ".join(p.split()) for p in _PARAGRAPH.split(text))


class PhraseList:
    def __init__(self, phrases: list[Phrase], negation: re.Pattern, contrast: re.Pattern):
        self.phrases = phrases
        self.negation = negation
        self.contrast = contrast
        # Which phrases each needed word piece can wake, so a message costs one
        # substring test per distinct piece rather than a loop over every phrase.
        self._always = [i for i, p in enumerate(phrases) if p.needs is None]
        self._by_piece: dict[str, list[int]] = {}
        for i, phrase in enumerate(phrases):
            for literal in phrase.needs or ():
                self._by_piece.setdefault(_piece(literal), []).append(i)

    @classmethod
    def load(cls, files: DataFiles, name: str) -> PhraseList:
        return cls(parse_phrases(files.lines(name), name),
                   _alternation(files.lines("negations.txt"), "negations.txt"),
                   _alternation(files.lines("contrasts.txt"), "contrasts.txt"))

    def score(self, text: str, vocabulary: Vocabulary | None = None) -> Score:
        """`text` must be `normalise`d; `vocabulary` of it may be shared between lists."""
        vocabulary = vocabulary or Vocabulary(text)
        words = vocabulary.words
        candidates = set(self._always).union(
            *[indexes for piece, indexes in self._by_piece.items() if piece in words])
        total, best, excerpt = 0.0, 0.0, ""
        for i in sorted(candidates):
            phrase = self.phrases[i]
            # A word piece can wake a phrase whose literals are not there in
            # full ("x" of "2x1"); a substring test is far cheaper than the scan.
            if phrase.needs is not None and not any(literal in text for literal in phrase.needs):
                continue
            for m in phrase.pattern.finditer(text):
                if phrase.ignores_negation or not self._negated(text, m.start(), m.end()):
                    total += phrase.weight
                    if phrase.weight > best:
                        best, excerpt = phrase.weight, _excerpt(text, m.start(), m.end())
                    break
        return Score(total, excerpt)

    def _negated(self, text: str, start: int, end: int) -> bool:
        before = text[max(0, start - BEFORE):start]
        cut = _last_end(_CLAUSE_END, before)
        before = before[cut:]
        before = before[_last_end(self.contrast, before):]
        after = text[end:end + AFTER]
        stop = _CLAUSE_END.search(after)
        after = after[:stop.start()] if stop else after
        stop = self.contrast.search(after)
        after = after[:stop.start()] if stop else after
        return bool(self.negation.search(before) or self.negation.search(after))


class Vocabulary:
    """The distinct words of a text, for fast tests of what a phrase needs.

    A literal a phrase needs is looked for by its longest space-free piece
    (part of one word) in the distinct words joined: far shorter than the
    text when words repeat.
    """

    def __init__(self, text: str):
        self.words = " ".join(set(text.split()))


def _piece(literal: str) -> str:
    return max(literal.split(), key=len, default="")


def _last_end(pattern: re.Pattern, text: str) -> int:
    end = 0
    for m in pattern.finditer(text):
        end = m.end()
    return end


def _excerpt(text: str, start: int, end: int) -> str:
    left = max(0, start - 60)
    return text[left:end + 60].strip()


def parse_phrases(lines: list[str], name: str) -> list[Phrase]:
    macros: dict[str, str] = {}
    phrases = []
    for line in lines:
        macro = _MACRO.match(line)
        if macro:
            macros[macro.group(1)] = _expand(macro.group(2), macros, name)
            continue
        m = _LINE.match(line)
        if m is None:
            raise PhraseError(f"{name}: not 'weight pattern': {line!r}")
        pattern = _expand(m.group(3), macros, name)
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise PhraseError(f"{name}: bad pattern {line!r}: {exc}") from None
        phrases.append(Phrase(float(m.group(1)), bool(m.group(2)), compiled, required_literals(pattern)))
    return phrases


def _expand(pattern: str, macros: dict[str, str], name: str) -> str:
    def sub(m: re.Match) -> str:
        if m.group(1) not in macros:
            raise PhraseError(f"{name}: unknown macro {{{m.group(1)}}}")
        return macros[m.group(1)]
    return re.sub(r"\{([a-z_]+)\}", sub, pattern)


def _alternation(lines: list[str], name: str) -> re.Pattern:
    try:
        return re.compile("|".join(f"(?:{line})" for line in lines) or r"(?!)")
    except re.error as exc:
        raise PhraseError(f"{name}: bad pattern: {exc}") from None
