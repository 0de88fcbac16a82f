"""Rule `links`: a seller's message may not link to any website.

Looked for in what the seller authored (`policy/authored.py`) and the
subject unless it is a reply's ("Re: ..."), which repeats the buyer's:

- in the text: addresses with a scheme (`https://`, `hxxp://`), `www.`
  names, bare domain names whose top-level domain is real by the public
  suffix list (the `publicsuffixlist` package, offline), a name with a
  path even under an unlisted domain (`shop.example/item/1`), and
  obfuscations: `example[.]com`, `example(dot)com`, `example dot com`,
  `example 点 com`;
- in the HTML: `<a href>`, `<form action>`, remote images (`<img src>`,
  `background`, CSS `url()`, tracking pixels), and any other URL-valued
  attribute, so a logo that carries a link is refused too.

Not links: email addresses and `mailto:`, images carried in the message
(`cid:`), `data:` and `tel:`, fragments, Outlook's XML namespace URIs
(`xmlns:o="urn:schemas-microsoft-com:office:office"`), the links mail
programs add on their own ("Get Outlook for iOS", `link_client_footers.txt`),
and any domain in `[policy] link_allow_domains` or below it. Dotted words that are not
domains (`e.g.`, `file.pdf`, `12.50`, `v1.2`, `Mr.Smith`, a missing space
as in `today.Best`) pass; the exceptions are in `link_not_domains.txt`.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import urlsplit

from publicsuffixlist import PublicSuffixList

from policy.authored import authored
from policy.datafiles import DataFiles
from policy.parsed import ParsedMessage
from policy.rule import Context, Direction
from policy.verdicts import Pass, Refuse, Verdict
from relay import replies

_EMAIL = re.compile(r"(?<![\w.+'=-])[\w.+'=-]++@[\w-]+(?:\.[\w-]+)+")
# A dot between a letter or digit and a letter: where a domain name may be.
_DOT_LETTER = re.compile(r"\.(?<=[\w-]\.)(?=[a-z])", re.IGNORECASE)
_BRACKET_DOT = re.compile(r"[\[\(\{<]\s?(?:\.|dot|punkt|point|punto|点|點|ドット)\s?[\]\)\}>]", re.IGNORECASE)
_SPELLED_HINTS = (" dot ", " . ", "点", "點", "ドット")
_SCHEME_URL = re.compile(r"\b[a-z][a-z0-9+.-]{0,15}://[^\s<>\"']+|\bwww\d{0,3}\.[a-z0-9-]+[^\s<>\"']*",
                         re.IGNORECASE)
# Labels may be internationalised ("bücher.de"); the top-level domain is judged by the list.
_BARE = re.compile(r"(?<![\w@.\-/])((?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+([a-z]{2,63}))"
                   r"(?![\w\-]|\.[a-z0-9])(/[\w%~.\-]+)?", re.IGNORECASE)
_DOT_WORDS = r"(?:\.|dot|punkt|point|punto|点|點|ドット)"
_BRACKETED = re.compile(rf"\b([a-z0-9-]{{1,63}})\s?[\[\(\{{<]\s?{_DOT_WORDS}\s?[\]\)\}}>]\s?([a-z]{{2,24}})\b",
                        re.IGNORECASE)
_SPELLED = re.compile(r"\b([a-z0-9-]{2,63})(?:\s+(?:dot|\.)\s+|\s*(?:点|點|ドット)\s*)([a-z]{2,24})\b", re.IGNORECASE)
_REMOTE = re.compile(r"^(?:[a-z][a-z0-9+.-]*:)?//|^www\d{0,3}\.", re.IGNORECASE)
_NAVIGATING = frozenset({"href", "action", "formaction", "ping", "codebase", "longdesc", "usemap", "manifest",
                         "profile"})


class Links:
    name = "links"
    directions = frozenset({Direction.SELLER_TO_BUYER})

    def __init__(self, files: DataFiles, allow_domains: tuple[str, ...] = ()):
        self.psl = PublicSuffixList(accept_unknown=False)
        self.allow_domains = tuple(d.lower().strip(".") for d in allow_domains)
        not_domains = files.lines("link_not_domains.txt")
        self.not_domains = frozenset(w.lower() for w in not_domains if not w.startswith("*."))
        self.file_endings = frozenset(w[2:].lower() for w in not_domains if w.startswith("*."))
        self.spelled_tlds = frozenset(w.lower() for w in files.lines("link_spelled_tlds.txt"))
        self.safe_prefixes = tuple(p.lower() for p in files.lines("link_allow.txt"))
        self.client_footers = tuple(files.lines("link_client_footers.txt"))

    def check(self, parsed: ParsedMessage, ctx: Context) -> Verdict:
        view = authored(parsed)
        for tag, attr, value in view.refs:
            what = self._ref(tag, attr, value)
            if what:
                return Refuse(replies.R550_LINK, what, f"<{tag} {attr}={value[:200]}>")
        text = unicodedata.normalize("NFKC", f"{view.own_subject}\n{view.text}")
        if "@" in text:
            text = _EMAIL.sub(" ", text)
        found = self.in_text(text)
        if found:
            return Refuse(replies.R550_LINK, found[0], found[1][:200])
        return Pass()

    def _ref(self, tag: str, attr: str, value: str) -> str | None:
        """Why an HTML attribute value is a link, or None."""
        if attr == "srcset":  # "a.png 1x, https://cdn/b.png 2x": each candidate counts
            return next(filter(None, (self._ref(tag, "src", c.split()[0]) for c in value.split(",") if c.strip())),
                        None)
        v = value.strip()
        low = v.lower()
        if not v or low.startswith("#") or low.startswith(self.safe_prefixes):
            return None
        if attr in _NAVIGATING:
            return None if self._allowed(_host(v)) or v.startswith(self.client_footers) else f"<{tag} {attr}> link"
        if _REMOTE.search(v):
            return None if self._allowed(_host(v)) else f"remote image or resource (<{tag} {attr}>)"
        return None

    def in_text(self, text: str) -> tuple[str, str] | None:
        """(what, excerpt) for the first web address in the text, or None."""
        low = text.lower()
        if "://" in text or "www" in low:
            for m in _SCHEME_URL.finditer(text):
                url = m.group(0)
                if not self._allowed(_host(url)) and not url.startswith(self.client_footers):
                    return "web address", url
        # The full patterns run only near a place where they can match.
        for lo, hi in _windows(text, _DOT_LETTER):
            for m in _BARE.finditer(text, lo, hi):
                if self._bare_is_domain(m):
                    return "domain name", m.group(0)
        for lo, hi in _windows(text, _BRACKET_DOT):
            for m in _BRACKETED.finditer(text, lo, hi):
                name = f"{m.group(1)}.{m.group(2)}"
                if self._real_domain(name) and not self._allowed(name):
                    return "disguised web address", m.group(0)
        if any(hint in low for hint in _SPELLED_HINTS):
            for m in _SPELLED.finditer(text):
                if m.group(2).lower() in self.spelled_tlds and not self._allowed(f"{m.group(1)}.{m.group(2)}"):
                    return "disguised web address", m.group(0)
        return None

    def _bare_is_domain(self, m: re.Match) -> bool:
        name, tld, path = m.group(1), m.group(2), m.group(3)
        if self._allowed(name.lower()):
            return False
        if path and len(path) > 1:
            return True  # host/path: a web address even under an unlisted domain
        low = name.lower()
        if low in self.not_domains or tld.lower() in self.file_endings:
            return False
        if tld[0].isupper() and not tld.isupper():
            return False  # "today.Best": a sentence missing its space
        return self._real_domain(low)

    def _real_domain(self, name: str) -> bool:
        try:
            return self.psl.privatesuffix(name.lower()) is not None
        except Exception:  # an odd label the list cannot judge
            return False

    def _allowed(self, host: str | None) -> bool:
        if not host or not self.allow_domains:
            return False
        host = host.lower().rstrip(".")
        return any(host == d or host.endswith("." + d) for d in self.allow_domains)


def _windows(text: str, hint: re.Pattern, reach: int = 260):
    """Spans of `text` around each match of `hint`, from a whitespace to `reach` past it, merged."""
    end = -1
    for m in hint.finditer(text):
        if m.start() < end - 80:  # the window already reaches past this name
            continue
        lo = max(text.rfind(" ", 0, max(0, m.start() - reach)), text.rfind("\n", 0, max(0, m.start() - reach)), 0)
        end = min(len(text), m.end() + reach)
        yield lo, end


def _host(url: str) -> str | None:
    text = url.strip()
    if "://" not in text and not text.startswith("//"):
        text = "//" + text
    try:
        return urlsplit(text).hostname
    except ValueError:
        return None
