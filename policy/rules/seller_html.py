"""Seller to buyer: HTML only of the allowed kinds, with a text alternative (a Transform).

Sellers may write HTML with the tags, attributes and CSS properties of
`html_tags.txt`, `html_attributes.txt` and `html_css.txt` (formatting,
lists, tables, images carried in the message and shown through `cid:`),
and `mailto:` links. Every HTML part is scanned; one that uses anything
else (a tag, an attribute, a CSS property, an address that is not cid: or
mailto:, a comment, a style sheet) is sanitized with nh3, which removes
what is not allowed and keeps the text. What the other rules refuse
(links, remote images) never gets here; this rule only removes.

A message whose HTML is all allowed and that has a text/plain part
passes untouched. One without a text/plain part gets one, made from the
(sanitized) HTML by `policy.htmltext`, as the first alternative.

Outlook's Word HTML (style sheets, `<o:p>`, conditional comments), Gmail's
and Apple Mail's replies lose their styling extras and keep their text,
signatures and quoted history.
"""

from __future__ import annotations

import html as html_lib
import re
from email.message import EmailMessage, Message, MIMEPart

import nh3

from policy.datafiles import DataFiles
from policy.htmltext import html_to_text
from policy.mimeedit import set_text
from policy.parsed import POLICY, ParsedMessage, decoded_text, is_attachment
from policy.rule import Context, Direction
from policy.verdicts import Pass, Transform, Verdict

URL_SCHEMES = frozenset({"cid", "mailto"})
_FRAME = frozenset({"html", "head", "body", "title"})
_DROPPED = frozenset({"script", "style", "title", "xml", "template", "object", "embed", "applet", "iframe",
                      "frame", "frameset", "form", "select", "textarea", "button", "svg", "math", "audio",
                      "video", "canvas", "map", "noscript"})
_TAG = re.compile(r"""<(/?)([a-zA-Z][a-zA-Z0-9:-]*)((?:\s+[^\s"'<>/=]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+))?)*)\s*/?>""")
_ATTR = re.compile(r"""([^\s"'<>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?""")
_DOCTYPE = re.compile(r"<!doctype[^<>]*>", re.IGNORECASE)
_BAD_CSS_VALUE = re.compile(r"url\s*\(|expression|javascript:|\\|@import|behavior|/\*", re.IGNORECASE)
_DOCUMENT = ('<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8"></head>'
             "<body>{}</body></html>")


class SellerHtml:
    name = "seller_html"
    directions = frozenset({Direction.SELLER_TO_BUYER})

    def __init__(self, files: DataFiles | None = None):
        data = files or DataFiles()
        self.tags = frozenset(t.lower() for t in data.lines("html_tags.txt"))
        self.attributes: dict[str, set[str]] = {}
        for line in data.lines("html_attributes.txt"):
            tag, _, names = line.partition(":")
            self.attributes.setdefault(tag.strip().lower(), set()).update(n.lower() for n in names.split())
        self.css = frozenset(p.lower() for p in data.lines("html_css.txt"))

    def check(self, parsed: ParsedMessage, ctx: Context) -> Verdict:
        message = parsed.message
        leaves = [p for p in message.walk() if not p.is_multipart() and not is_attachment(p)]
        html_parts = [p for p in leaves if p.get_content_type() == "text/html"]
        if not html_parts:
            return Pass()
        has_plain = any(p.get_content_type() == "text/plain" for p in leaves)
        notes = []
        for part in html_parts:
            markup = decoded_text(part)
            problem = self.problem(markup)
            if problem is not None:
                set_text(part, _DOCUMENT.format(self.clean(markup)), "html")
                notes.append(f"sanitized HTML ({problem})")
        if not has_plain:
            notes.append("added a text alternative" if _add_plain(message) else "no text alternative possible")
        if not notes:
            return Pass()
        # The message is changed in place: nothing reads the original object after the rules.
        return Transform(message, "; ".join(notes))

    def clean(self, markup: str) -> str:
        return nh3.clean(markup, tags=set(self.tags), clean_content_tags=set(_DROPPED - self.tags),
                         attributes={k: set(v) for k, v in self.attributes.items()},
                         url_schemes=set(URL_SCHEMES), url_relative="deny",
                         filter_style_properties=set(self.css), link_rel=None, strip_comments=True)

    def problem(self, markup: str) -> str | None:
        """What in the HTML is not allowed, or None if nothing is."""
        pos = 0
        judged: set[str] = set()  # tags seen before (quoted history repeats the same ones)
        while (pos := markup.find("<", pos)) >= 0:
            nxt = markup[pos + 1:pos + 2]
            if not (nxt.isascii() and (nxt.isalpha() or nxt in "/!?")):
                pos += 1
                continue  # a "<" shown as text
            if nxt == "!":
                doctype = _DOCTYPE.match(markup, pos)
                if doctype is None:
                    return "a comment or declaration"
                pos = doctype.end()
                continue
            tag = _TAG.match(markup, pos)
            if tag is None:
                return "markup the scan cannot read"
            if tag.group(0) not in judged:
                problem = self._tag_problem(tag.group(2).lower(), tag.group(3), closing=bool(tag.group(1)))
                if problem is not None:
                    return problem
                judged.add(tag.group(0))
            pos = tag.end()
        return None

    def _tag_problem(self, name: str, attributes: str, closing: bool) -> str | None:
        if name not in self.tags and name not in _FRAME and name != "meta":
            return f"<{name}>"
        if closing:
            return None
        allowed = self.attributes.get("*", set()) | self.attributes.get(name, set())
        values = {}
        for match in _ATTR.finditer(attributes):
            attribute = match.group(1).lower()
            value = html_lib.unescape(next((g for g in match.groups()[1:] if g is not None), ""))
            values[attribute] = value
            if name == "meta":
                continue
            if attribute not in allowed:
                return f"the {attribute} attribute of <{name}>"
            if attribute in ("href", "src") and value.strip().split(":", 1)[0].lower() not in URL_SCHEMES:
                return f"an address in <{name}>"
            if attribute == "style":
                problem = self._css_problem(value)
                if problem is not None:
                    return problem
        if name == "meta" and not ("charset" in values or values.get("http-equiv", "").lower() == "content-type"):
            return "<meta>"
        return None

    def _css_problem(self, style: str) -> str | None:
        for declaration in style.split(";"):
            prop, colon, value = declaration.partition(":")
            prop = prop.strip().lower()
            if not prop and not value.strip():
                continue
            if not colon or prop not in self.css:
                return f"the CSS property {prop or declaration.strip()!r}"
            if _BAD_CSS_VALUE.search(value):
                return f"the CSS value of {prop}"
        return None


def _add_plain(message: EmailMessage) -> bool:
    """Put a text/plain alternative, made from the HTML, before the HTML body."""
    try:
        body = message.get_body(preferencelist=("related", "html"))
    except Exception:  # a structure get_body cannot walk
        body = None
    if body is None:
        return False
    html_part = body if body.get_content_type() == "text/html" else body.get_body(preferencelist=("html",))
    if html_part is None:
        return False
    text = html_to_text(decoded_text(html_part))
    if body is message:
        inner = MIMEPart(policy=POLICY)
        for name, value in message.raw_items():
            if name.lower().startswith("content-"):
                inner.set_raw(name, value)
        inner.set_payload(message.get_payload())
        inner.preamble, inner.epilogue = message.preamble, message.epilogue
        for name in {n for n in message.keys() if n.lower().startswith("content-")}:
            del message[name]
        message.set_payload(None)
        message.preamble = message.epilogue = None
        message.set_content(text, charset="utf-8")
        message.make_alternative()
        message.attach(inner)
        return True
    parent = _parent_of(message, body)
    if parent is None:
        return False
    alternative = MIMEPart(policy=POLICY)
    alternative.set_content(text, charset="utf-8")
    alternative.make_alternative()
    alternative.attach(body)
    siblings = parent.get_payload()
    siblings[next(i for i, p in enumerate(siblings) if p is body)] = alternative
    return True


def _parent_of(message: Message, child: Message) -> Message | None:
    for part in message.walk():
        if part.is_multipart() and any(p is child for p in part.get_payload()):
            return part
    return None
