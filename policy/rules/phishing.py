"""Buyer to seller: label phishing and requests to follow links (a Warn).

The marketplace forwards buyers' mail without judging its content, but
a buyer message can try to pass for the marketplace itself, or to send
the seller to another site. Such a message is still delivered, with the
header `X-Relay-Warning: <word>` and a short warning as its first
paragraph (`relay/rewrite.py`), and the word in the log's `warning`.

- `impersonation`, for a message that is not plain text and claims to
  come from the marketplace: its name in the From display name; a
  lookalike of the marketplace's name or alias domain in a link or in the
  text (`rnarketp1ace-support.example`; the alias domain itself is not
  one); a phrase about the reader's account (`phishing_account.txt`:
  "verify your account", "your account will be suspended", in several
  languages); a login link (`phishing_login.txt` in a link's text or
  address) or a password field.
- `links`, for any buyer message that urges the seller to click a link,
  paste one into a browser or go to another site (`phishing_links.txt`)
  and carries a link or web address to follow. A buyer who pastes a
  tracking number, or names the marketplace in plain text, is not
  labelled. Impersonation wins where both apply.

The rule runs before `plain_text`, so it judges the message as sent.
"""

from __future__ import annotations

import html as html_lib
import re
import unicodedata
from functools import cached_property
from urllib.parse import urlsplit

import nh3
from publicsuffixlist import PublicSuffixList

from policy.datafiles import DataFiles
from policy.parsed import ParsedMessage
from policy.rule import Context, Direction
from policy.verdicts import Pass, Verdict, Warn

_HIDDEN = {"script", "style", "title", "head", "template", "noscript", "xml"}
_HREF = re.compile(r"""<(?:a|area)\b[^>]*?\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))[^>]*>(.*?)(?:</a>|$)""",
                   re.IGNORECASE | re.DOTALL)
_FORM_PASSWORD = re.compile(r"""<input\b[^>]*\btype\s*=\s*["']?password""", re.IGNORECASE)
# Each starts with a literal, so the regular-expression engine skips ahead fast.
_URLS = (re.compile(r"https?://[^\s<>\"']+"), re.compile(r"www\.[^\s<>\"']+"))
_HOSTNAME = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{1,62}")
_TRIM = ".,;:!?()[]{}<>\"'*"
_TAGS = re.compile(r"<[^>]*>")
_SPACES = re.compile(r"\s+")
_CONFUSABLE = str.maketrans({"0": "o", "1": "l", "i": "l", "|": "l", "!": "l", "3": "e", "4": "a", "@": "a",
                             "5": "s", "$": "s", "7": "t", "8": "b", "а": "a", "е": "e", "о": "o", "р": "p",
                             "с": "c", "х": "x", "у": "y", "ѕ": "s", "і": "l", "ӏ": "l", "ԁ": "d", "ɡ": "g"})


class Phishing:
    name = "phishing"
    directions = frozenset({Direction.BUYER_TO_SELLER})

    def __init__(self, files: DataFiles | None = None):
        data = files or DataFiles()
        self.account = _patterns(data.lines("phishing_account.txt"))
        self.urging = _patterns(data.lines("phishing_links.txt"))
        self.login = _patterns(data.lines("phishing_login.txt"))

    @cached_property
    def suffixes(self) -> PublicSuffixList:
        """Loaded on first use (tens of milliseconds): most messages never need it."""
        return PublicSuffixList(accept_unknown=False)

    def check(self, parsed: ParsedMessage, ctx: Context) -> Verdict:
        view = _View.of(parsed)
        if not parsed.is_plain_text:
            reason = self.impersonation(parsed, view, ctx)
            if reason is not None:
                return Warn("impersonation", reason)
        urging = _first_match(self.urging, view.text)
        if urging is not None:
            target = self.link_in(view)
            if target is not None:
                return Warn("links", f"urges the seller to follow a link ({urging!r}, {target})")
        return Pass()

    def impersonation(self, parsed: ParsedMessage, view: _View, ctx: Context) -> str | None:
        brands = _brands(ctx)
        display = _display_name(parsed)
        if display and any(brand in _fold(display) for brand in brands):
            return "the marketplace's name in the From display name"
        for host in self.hosts(view):
            if _lookalike(host, brands, ctx.alias_domain.lower()):
                return f"lookalike domain {host}"
        phrase = _first_match(self.account, view.text)
        if phrase is not None:
            return f"claims to speak about the seller's account ({phrase!r})"
        for url, label in view.links:
            if _first_match(self.login, label) or _first_match(self.login, url.lower()):
                return "a login link"
        if view.password_field:
            return "a password field"
        return None

    def hosts(self, view: _View) -> list[str]:
        found = [_host(url) for url, _ in view.links]
        found += [_host(url if "://" in url else "http://" + url) for url in _web_addresses(view.text)]
        found += [h for h in set(_bare_hosts(view.text)) if self.suffixes.privatesuffix(h)]
        return [h for h in found if h]

    def link_in(self, view: _View) -> str | None:
        """A link or web address the message carries, or None."""
        for url, _ in view.links:
            if url.lower().startswith(("http:", "https:", "www.", "//")):
                return url[:100]
        for address in _web_addresses(view.text):
            return address[:100]
        for host in _bare_hosts(view.text):
            if self.suffixes.privatesuffix(host):
                return host
        return None


class _View:
    """What the reader sees (text, in lower case) and what the markup links to."""

    def __init__(self, text: str, links: list[tuple[str, str]], password_field: bool):
        self.text = text
        self.links = links
        self.password_field = password_field

    @classmethod
    def of(cls, parsed: ParsedMessage) -> _View:
        texts = [p.text for p in parsed.text_parts]
        links: list[tuple[str, str]] = []
        password = False
        for part in parsed.html_parts:
            markup = part.text
            visible = nh3.clean(markup, tags=set(), clean_content_tags=_HIDDEN, strip_comments=True)
            texts.append(html_lib.unescape(visible))
            for match in _HREF.finditer(markup):
                url = html_lib.unescape(next(g for g in match.groups()[:3] if g is not None)).strip()
                label = html_lib.unescape(_TAGS.sub(" ", match.group(4)))
                links.append((url, _SPACES.sub(" ", label).strip()))
            password = password or bool(_FORM_PASSWORD.search(markup))
        text = _SPACES.sub(" ", " ".join(texts).replace("\u00a0", " ")).lower()
        return cls(text, [(url, label.lower()) for url, label in links], password)


def _patterns(lines: list[str]) -> list[re.Pattern]:
    # Lower-cased lines on lower-cased text: IGNORECASE would cost several times more.
    return [re.compile(line.lower()) for line in lines]


def _first_match(patterns: list[re.Pattern], text: str) -> str | None:
    """The first phrase found as whole words (`text` is in lower case)."""
    for pattern in patterns:
        for match in pattern.finditer(text):
            start, end = match.start(), match.end()
            if _glued(text, start - 1, match.group(0)[:1]) or _glued(text, end, match.group(0)[-1:]):
                continue
            return match.group(0)
    return None


def _glued(text: str, index: int, edge: str) -> bool:
    """Whether a Latin letter or digit at `index` continues the word at the match's edge."""
    if not 0 <= index < len(text) or not (edge.isascii() and edge.isalnum()):
        return False
    neighbour = text[index]
    return neighbour.isascii() and neighbour.isalnum()


def _web_addresses(text: str) -> list[str]:
    return [m.group(0) for pattern in _URLS for m in pattern.finditer(text)]


def _bare_hosts(text: str) -> list[str]:
    """Dotted words that look like host names (`shop.example.com/x`); e-mail addresses excluded."""
    found = []
    for word in text.split():
        if "." not in word or "@" in word:
            continue
        host = word.strip(_TRIM).split("/", 1)[0]
        if "." in host and _HOSTNAME.fullmatch(host):
            found.append(host)
    return found


def _display_name(parsed: ParsedMessage) -> str:
    try:
        header = parsed.message.get("From")
        return " ".join(a.display_name for a in header.addresses) if header is not None else ""
    except Exception:  # a From the parser cannot read: the sender checks judged it already
        return ""


def _fold(text: str) -> str:
    """Lower case, accents and lookalike characters folded, separators gone."""
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(c for c in text if not unicodedata.combining(c)).translate(_CONFUSABLE)
    text = text.replace("rn", "m").replace("vv", "w")
    return "".join(c for c in text if c.isalnum())


def _brands(ctx: Context) -> list[str]:
    names = [ctx.marketplace_name, ctx.alias_domain.split(".")[0] if ctx.alias_domain else ""]
    return sorted({folded for name in names if len(folded := _fold(name)) >= 4})


def _host(url: str) -> str:
    try:
        host = urlsplit(url.strip()).hostname or ""
    except ValueError:
        return ""
    try:
        return host.encode("ascii").decode("idna") if "xn--" in host else host
    except UnicodeError:
        return host


def _lookalike(host: str, brands: list[str], own: str) -> bool:
    host = host.lower().rstrip(".")
    if own and (host == own or host.endswith("." + own)):
        return False
    folded = _fold(host)
    if any(brand in folded for brand in brands):
        return True
    labels = [_fold(label) for label in host.split(".")]
    return any(len(brand) >= 6 and 0 < _distance(label, brand) <= (2 if len(brand) >= 9 else 1)
               for brand in brands for label in labels)


def _distance(a: str, b: str) -> int:
    """Levenshtein distance (labels are short)."""
    if abs(len(a) - len(b)) > 2:
        return 3
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]
