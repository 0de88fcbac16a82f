"""The seller's own words of a message, computed once for every rule.

`authored(parsed)` returns an `Authored` view, cached on the parsed
message so the links, promotion, reviews, payment and order-id rules
share one pass:

- `text`: the text/plain parts and the visible text of the HTML parts,
  each without quoted history (`policy/quoting.py`);
- `refs`: every URL-valued attribute (`href`, `src`, `action`,
  `background`, ...) and CSS `url(...)` of the authored HTML, as
  `(tag, attribute, value)`;
- `subject`: the Subject line; `own_subject` the same unless it is a
  reply's ("Re: ...", "AW: ...", "回复：..."), which repeats the buyer's;
- `oversized`: a part's own text (or own HTML) is longer than the rules
  read (`SCAN_CHARS`, `SCAN_HTML_CHARS`); the `text_size` rule refuses
  such a message rather than let the rest go unread.

The visible text of HTML is found with regular expressions: comments,
`<head>`, `<style>` and `<script>` are dropped, block elements become line
breaks, inline tags vanish (so `exam<b>ple</b>.com` reads as one word),
and entities are decoded.
"""

from __future__ import annotations

import html as html_lib
import re
from dataclasses import dataclass

from policy.parsed import ParsedMessage
from policy.quoting import authored_html, authored_plain


@dataclass(frozen=True)
class Authored:
    subject: str
    text: str
    refs: tuple[tuple[str, str, str], ...]
    oversized: bool = False

    @property
    def own_subject(self) -> str:
        """The subject, unless it is a reply's ("Re: ..."), whose words are the buyer's."""
        return "" if _REPLY_SUBJECT.match(self.subject) else self.subject


_REPLY_SUBJECT = re.compile(r"^\s*(?:re|aw|antw|sv|vs|r|rif|res|回复|回覆|答复|返信|tr|fw|fwd|wg)\s*[:：]",
                            re.IGNORECASE)


def authored(parsed: ParsedMessage) -> Authored:
    return parsed.memo("authored", lambda: _compute(parsed))


# The most of each part's own text (quoted history not counted), and of
# its own HTML, that the rules read. A customer-service reply is far
# shorter; a longer one is refused (`text_size`), never read in part.
SCAN_CHARS = 64 * 1024
SCAN_HTML_CHARS = 512 * 1024


def _compute(parsed: ParsedMessage) -> Authored:
    texts = [authored_plain(p.text) for p in parsed.text_parts]
    oversized = any(len(t) > SCAN_CHARS for t in texts)
    refs: list[tuple[str, str, str]] = []
    for part in parsed.html_parts:
        own = authored_html(part.text)
        if len(own) > SCAN_HTML_CHARS:
            oversized = True
            own = own[:SCAN_HTML_CHARS]
        refs.extend(url_refs(own))
        texts.append(visible_text(own))
    oversized = oversized or any(len(t) > SCAN_CHARS for t in texts)
    return Authored(parsed.subject, "\n\n".join(t[:SCAN_CHARS] for t in texts), tuple(refs), oversized)


_INVISIBLE = re.compile(
    r"<!--.*?(?:-->|\Z)|<(head|style|script|title|xml)\b.*?(?:</\1\s*>|\Z)", re.IGNORECASE | re.DOTALL)
_BLOCK_TAG = re.compile(
    r"</?(?:p|div|br|li|ul|ol|tr|td|th|table|h[1-6]|blockquote|hr|pre|section|article|header|footer)\b[^>]*>",
    re.IGNORECASE)
_ANY_TAG = re.compile(r"<[^>]*>")


def visible_text(html: str) -> str:
    """What a reader sees of an HTML body, roughly: enough for phrase and link rules."""
    text = _INVISIBLE.sub(" ", html)
    text = _BLOCK_TAG.sub("\n", text)
    text = _ANY_TAG.sub("", text)
    return html_lib.unescape(text)


# URL-valued attributes; `xmlns:*` and the like are namespace names, not links.
_START_TAG = re.compile(r"<([a-zA-Z][\w:-]*)(\s[^>]*)>")
_URL_ATTR = re.compile(
    r"(?:^|\s)(href|src|action|formaction|background|srcset|lowsrc|dynsrc|data|poster|codebase|longdesc|"
    r"ping|manifest|profile|usemap|icon)\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s>]+)",
    re.IGNORECASE)
_CSS_URL = re.compile(r"url\(\s*(?:&quot;|[\"']?)\s*([^\"')&]+)", re.IGNORECASE)


def url_refs(html: str) -> list[tuple[str, str, str]]:
    refs = []
    for tag in _START_TAG.finditer(html):
        name, attrs = tag.group(1).lower(), tag.group(2)
        for m in _URL_ATTR.finditer(attrs):
            refs.append((name, m.group(1).lower(), html_lib.unescape(m.group(2).strip("\"'")).strip()))
        if "url(" in attrs.lower():
            refs.extend((name, "style", m.group(1).strip()) for m in _CSS_URL.finditer(attrs))
    for style in re.finditer(r"<style\b[^>]*>(.*?)</style\s*>", html, re.IGNORECASE | re.DOTALL):
        refs.extend(("style", "url", m.group(1).strip()) for m in _CSS_URL.finditer(style.group(1)))
    return refs
