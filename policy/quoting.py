"""What the seller wrote, without the history their mail program quoted.

A reply usually carries the buyer's earlier message below (or between)
the seller's own words. The seller rules judge only what the seller
authored, so a buyer's link or question quoted back does not count
against them.

- `authored_plain(text)` drops `>` lines, "On ... wrote:" attribution
  lines (Gmail, Apple Mail, Thunderbird, in the languages sellers write
  in), and everything from an Outlook reply header block on: a
  "-----Original Message-----" line, or a "From: ... / Sent: ..." pair
  (and its translations) with what follows.
- `authored_html(html)` removes Gmail's `gmail_quote` elements, Apple
  Mail's and Thunderbird's `<blockquote type="cite">` (with Thunderbird's
  `moz-cite-prefix`), Yahoo's `yahoo_quoted`, and cuts at Outlook's reply
  block (`divRplyFwdMsg`, or the `border-top:solid #E1E1E1` / `#B5C4DF`
  div that opens the header block) to the end.

Both work with regular expressions over the text, not a DOM: a 100 KB
reply is handled in well under a millisecond, and malformed HTML (an
unclosed element) only means the rest of the document is treated as
quoted, which can only let more through, never refuse more.
"""

from __future__ import annotations

import re

_QUOTED_LINE = re.compile(r"^[ \t]*>.*(?:\n|$)", re.MULTILINE)

# The end of an attribution line ("On Mon, 3 Mar 2025 at 10:00, Jane <...>
# wrote:"), or Gmail's Japanese form ("2025年3月3日(月) 10:00 Jane <...>:").
_ATTRIBUTION = re.compile(
    r"(?:wrote|schrieb|a écrit|escribió|ha scritto|scrisse|写道|寫道)[ \t]*[:：][ \t]*$"
    r"|\d{4}年\d{1,2}月\d{1,2}日[^\n]{0,200}[:：][ \t]*$",
    re.MULTILINE | re.IGNORECASE)

_ATTRIBUTION_WORDS = ("wrote", "Wrote", "schrieb", "crit", "escribi", "scritto", "scrisse", "写道", "寫道", "年")
_ATTRIBUTION_LINE = re.compile(r"^.*(?:" + _ATTRIBUTION.pattern + ")", re.MULTILINE | re.IGNORECASE)

_ORIGINAL_MESSAGE = re.compile(
    r"^[ \t]*-{2,}[ \t]*(?:Original Message|Ursprüngliche Nachricht|Message d'origine|Mensaje original|"
    r"Messaggio originale|原始邮件|原始郵件|元のメッセージ|Forwarded message|Weitergeleitete Nachricht)"
    r"[ \t]*-{2,}", re.MULTILINE | re.IGNORECASE)

# "From: ..." followed within a few lines by "Sent: ..." (Outlook's header block).
_HEADER_BLOCK = re.compile(
    r"^[ \t]*\*?(?:From|Von|De|Da|差出人|发件人|寄件者)\*?[ \t]*[:：][^\n]*\n"
    r"(?:[^\n]*\n){0,3}?"
    r"[ \t]*\*?(?:Sent|Date|Gesendet|Datum|Envoyé|Enviado|Fecha|Inviato|Data|送信日時|日時|发送时间|發送時間|时间)"
    r"\*?[ \t]*[:：]", re.MULTILINE | re.IGNORECASE)

_HEADER_HINTS = ("From", "FROM", "from:", "Von", "De", "Da", "差出人", "发件人", "寄件者")

_UNDERSCORE_RULE = re.compile(r"^[ \t]*_{8,}[ \t]*\n(?=(?:[ \t]*\n)*[ \t]*\*?[^\s:：]{1,12}\*?[ \t]*[:：])",
                              re.MULTILINE)


def authored_plain(text: str) -> str:
    """The seller's own lines of a text/plain body."""
    # `>` lines first: one cheap pass that leaves a long quoted history short
    # for the searches below (none of their markers starts with ">").
    if ">" in text:
        text = _QUOTED_LINE.sub("", text)
    cut = len(text)
    # Cheap substring tests first: most messages have none of these markers.
    for pattern, hints in ((_ORIGINAL_MESSAGE, ("--",)), (_HEADER_BLOCK, _HEADER_HINTS), (_UNDERSCORE_RULE, ("____",))):
        if any(hint in text for hint in hints):
            m = pattern.search(text, 0, cut)
            if m:
                cut = m.start()
    text = text[:cut]
    if any(word in text for word in _ATTRIBUTION_WORDS) and _ATTRIBUTION.search(text):
        text = _ATTRIBUTION_LINE.sub("", text)
    return text


# Start tags of elements that hold quoted history; the element is removed.
_QUOTE_ELEMENT = re.compile(
    r"<(div|blockquote)\b[^>]*?\bclass\s*=\s*[\"']?[^\"'>]*\b(?:gmail_quote|yahoo_quoted|moz-cite-prefix)\b[^>]*>"
    r"|<(blockquote)\b[^>]*?\btype\s*=\s*[\"']?cite\b[^>]*>",
    re.IGNORECASE)

# Start of Outlook's reply header block: removed with everything after it.
_OUTLOOK_CUT = re.compile(
    r"<div\b[^>]*?\bid\s*=\s*[\"']?divRplyFwdMsg\b"
    r"|<div\b[^>]*?border-top\s*:\s*solid\s+#(?:E1E1E1|B5C4DF)\b"
    r"|<div\b[^>]*?\bclass\s*=\s*[\"']?OutlookMessageHeader\b",
    re.IGNORECASE)


def authored_html(html: str) -> str:
    """The HTML with quoted history removed (still HTML)."""
    m = _OUTLOOK_CUT.search(html)
    if m:
        html = html[:m.start()]
    pieces = []
    pos = 0
    while True:
        m = _QUOTE_ELEMENT.search(html, pos)
        if m is None:
            break
        tag = (m.group(1) or m.group(2)).lower()
        pieces.append(html[pos:m.start()])
        pos = _element_end(html, tag, m.end())
    pieces.append(html[pos:])
    return "".join(pieces)


def _element_end(html: str, tag: str, start: int) -> int:
    """Index just past the end tag that closes the element opened before `start`."""
    pattern = _TAG_PATTERNS[tag]
    depth = 1
    for m in pattern.finditer(html, start):
        depth += -1 if m.group(1) else 1
        if depth == 0:
            return m.end()
    return len(html)  # never closed: the rest is quoted


_TAG_PATTERNS = {tag: re.compile(rf"<(/?){tag}\b[^>]*>", re.IGNORECASE) for tag in ("div", "blockquote")}
