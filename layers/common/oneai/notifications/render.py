"""Fill an email's templates (`templates/<kind>.txt`, whose first line is `Subject: ...`, and
`templates/<kind>.html`) with the occasion's values, with `string.Template`: no logic in templates, and a
missing value is an error (KeyError), never an email with a `$hole`. HTML values are escaped."""

from __future__ import annotations

import html
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from string import Template
from typing import Final

from oneai.notifications.kinds import PREFERENCE_OF, is_account_kind
from oneai.notifications.occasions import Occasion

TEMPLATES: Final = Path(__file__).with_name("templates")
PREFERENCE_LABELS: Final = {
    "quota_warnings": "quota warning",
    "billing": "billing",
    "product": "product",
    "usage_summary": "monthly usage summary",
}


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


@cache
def _template(name: str) -> Template:
    return Template((TEMPLATES / name).read_text(encoding="utf-8"))


def render(occasion: Occasion, *, name: str | None, unsubscribe_url: str | None) -> RenderedEmail:
    """An account email's footer says how to stop that kind (`unsubscribe_url`); an email to an address
    that is not a user's (an invitation) has its own footer and no unsubscribe link."""
    values = {**occasion.values, "name": name or "there"}
    footer = "_footer"
    if is_account_kind(occasion.kind):
        if unsubscribe_url is None:
            raise ValueError(f"a {occasion.kind} email needs its unsubscribe link")
        values.update(
            unsubscribe_url=unsubscribe_url, preference_label=PREFERENCE_LABELS[PREFERENCE_OF[occasion.kind]]
        )
    else:
        footer = f"_footer_{occasion.kind}"
    text = _template(f"{occasion.kind}.txt").substitute(values) + _template(f"{footer}.txt").substitute(values)
    first_line, _, body = text.partition("\n")
    if not first_line.startswith("Subject: "):
        raise ValueError(f"templates/{occasion.kind}.txt must start with a Subject: line")
    escaped = {key: html.escape(value) for key, value in values.items()}
    body_html = _template(f"{occasion.kind}.html").substitute(escaped) + _template(f"{footer}.html").substitute(
        escaped
    )
    subject = first_line.removeprefix("Subject: ").strip()
    document = (
        '<!doctype html><html><head><meta charset="utf-8"><title>'
        f"{html.escape(subject)}</title></head><body>\n{body_html}</body></html>\n"
    )
    return RenderedEmail(subject=subject, text=body.lstrip("\n"), html=document)
