"""Literal strings a regular expression cannot match without.

`required_literals(pattern)` returns a set of strings one of which every
match of `pattern` contains, or None when no such set can be found (then
the pattern must simply be run). The phrase rules use it to skip, with a
fast substring test, the many phrases whose words a message does not
contain: running a hundred patterns over a message costs far more than
looking for a few hundred short strings.

It reads the pattern with the standard library's own parser (`re._parser`);
on a Python whose parser differs, it returns None and nothing is skipped.
"""

from __future__ import annotations

try:
    from re import _constants as _c
    from re import _parser as _p
except ImportError:  # pragma: no cover - a future Python without them
    _p = _c = None


def _useful(literal: str) -> bool:
    """Long enough to be rare: two characters, or one that is not an ASCII letter or digit (%, 折)."""
    text = literal.strip()
    return len(text) >= 2 or (len(text) == 1 and not (text.isascii() and text.isalnum()))


def required_literals(pattern: str) -> frozenset[str] | None:
    if _p is None:
        return None
    try:
        found = _sequence(list(_p.parse(pattern)))
    except Exception:  # the parser's internals changed: skip nothing
        return None
    return frozenset(found) if found else None


def _sequence(items: list) -> set[str] | None:
    candidates: list[set[str]] = []
    run: list[str] = []
    for op, av in items:
        if op is _c.LITERAL:
            run.append(chr(av))
            continue
        if run:
            candidates.append({"".join(run)})
            run = []
        found = _item(op, av)
        if found:
            candidates.append(found)
    if run:
        candidates.append({"".join(run)})
    useful = [c for c in candidates if all(_useful(s) for s in c)]
    if not useful:
        return None
    return max(useful, key=lambda c: (min(len(s.strip()) for s in c), -len(c)))


def _item(op, av) -> set[str] | None:
    if op is _c.SUBPATTERN:
        return _sequence(list(av[-1]))
    if op is _c.BRANCH:
        union: set[str] = set()
        for branch in av[1]:
            found = _sequence(list(branch))
            if not found:
                return None
            union |= found
        return union
    if op in (_c.MAX_REPEAT, _c.MIN_REPEAT) and av[0] >= 1:
        return _sequence(list(av[2]))
    return None
