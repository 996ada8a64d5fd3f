"""Notification pieces without a network or a database: event -> occasion, money and times as people
read them, the months of the summary sweep, preference switches and unsubscribe tokens, the message."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from email import message_from_bytes, policy
from typing import Any

import pytest

from oneai.notifications.kinds import notification_preferences, wants
from oneai.notifications.mail import build_message
from oneai.notifications.occasions import UnknownEventError, money, occasion_of
from oneai.notifications.render import render
from oneai.notifications.summary import Month
from oneai.notifications.unsubscribe import InvalidUnsubscribeTokenError, sign_token, verify_token

USER = uuid.UUID("5f0c3a4e-2b7d-4e8f-9a10-1b2c3d4e5f60")


def event(source: str, detail_type: str, **detail: Any) -> dict[str, Any]:
    return {"source": source, "detail-type": detail_type, "detail": {"user_id": str(USER), **detail}}


def test_each_threshold_of_each_window_is_its_own_occasion() -> None:
    base = {"quota_key": "small_messages", "used": 80, "limit": 100, "tier": "free"}
    keys = {
        occasion_of(event("oneai.quota", "QuotaWarning", threshold=t, resets_at=r, **base)).key
        for t in (80, 90, 100)
        for r in ("2026-11-23T00:00:00Z", "2026-11-24T00:00:00+00:00")
    }
    assert len(keys) == 6
    # the same window written two ways is the same occasion
    a = occasion_of(
        event("oneai.quota", "QuotaWarning", threshold=80, resets_at="2026-11-23T05:30:00+05:30", **base)
    )
    b = occasion_of(event("oneai.quota", "QuotaWarning", threshold=80, resets_at="2026-11-23T00:00:00Z", **base))
    assert a.key == b.key == "small_messages:2026-11-23T00:00:00Z:80"


@pytest.mark.parametrize(
    "bad",
    [
        {"source": "oneai.quota", "detail-type": "Something"},
        event(
            "oneai.quota", "QuotaWarning", threshold=85, quota_key="q", used=1, limit=2, resets_at="x", tier="f"
        ),
        event("oneai.billing", "PaymentReceived", payment_id="p", amount="lots", currency="INR", tier="pro"),
        {"source": "oneai.account", "detail-type": "UserCreated", "detail": {"user_id": "not-a-uuid"}},
        {"source": "oneai.account", "detail-type": "UserCreated", "detail": "text"},
    ],
)
def test_unknown_or_malformed_events_are_refused(bad: dict[str, Any]) -> None:
    if "detail" not in bad:
        bad = {**bad, "detail": {"user_id": str(USER)}}
    with pytest.raises(UnknownEventError):
        occasion_of(bad)


def test_amounts_are_shown_in_major_units() -> None:
    assert money(49900, "INR") == "INR 499.00"
    assert money(123456789, "usd") == "USD 1,234,567.89"
    assert money(500, "JPY") == "JPY 500"
    assert money(None, None) == "the amount due"


def test_last_month_across_a_year_boundary() -> None:
    january = Month.before(datetime(2027, 1, 1, 0, 0, 5, tzinfo=UTC))
    assert (january.label, january.start, january.end) == (
        "2026-12",
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert Month.parse("2026-02").end == datetime(2026, 3, 1, tzinfo=UTC)
    with pytest.raises(ValueError):
        Month.parse("2026-13")


def test_switches_default_on_and_receipts_ignore_billing_off() -> None:
    assert notification_preferences({}) == dict.fromkeys(
        ("quota_warnings", "billing", "product", "usage_summary"), True
    )
    off = {"notifications": {"billing": False, "quota_warnings": "no"}}  # a non-bool counts as unset
    assert notification_preferences(off)["quota_warnings"] is True
    assert not wants("subscription_ended", off)
    assert wants("payment_received", off) and wants("payment_failed", off)


def test_tokens_name_one_user_and_one_switch() -> None:
    token = sign_token(b"k", USER, "billing")
    assert verify_token(b"k", token) == (USER, "billing")
    for bad in (
        token + "x",
        token.replace("billing", "product"),
        sign_token(b"other", USER, "billing"),
        "a.b",
        None,
    ):
        with pytest.raises(InvalidUnsubscribeTokenError):
            verify_token(b"k", bad)


def test_the_message_has_both_parts_escapes_html_and_carries_rfc_8058_headers() -> None:
    occasion = occasion_of(
        event(
            "oneai.billing", "PaymentReceived", payment_id="pay_1", amount=100, currency="INR", tier="<b>pro</b>"
        )
    )
    link = (
        "https://abcdefghij.execute-api.ap-south-1.amazonaws.com/prod/notifications/unsubscribe?token=" + "t" * 90
    )
    email = render(occasion, name="Ana <script> Müller", unsubscribe_url=link)
    message = build_message(
        email, sender="OneAI <no-reply@oneai.test>", to="ana@example.test", unsubscribe_url=link
    )
    raw = message.as_bytes()
    # the headers as a mail client reads them: one plain line each, CRLF, 7-bit
    assert f"\r\nList-Unsubscribe: <{link}>\r\n".encode() in raw
    assert b"\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in raw
    assert all(byte < 128 for byte in raw)
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed["List-Unsubscribe"] == f"<{link}>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed.get_content_type() == "multipart/alternative"
    html = parsed.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
    text = parsed.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "&lt;script&gt;" in html and "<script>" not in html and "&lt;b&gt;pro&lt;/b&gt;" in html
    assert "Hi Ana <script> Müller," in text and "INR 1.00" in text and link in text


def test_an_ended_email_is_due_only_when_the_user_is_left_lower() -> None:
    from oneai.billing.notices import loses_tier

    assert loses_tier("pro", "free") and loses_tier("enterprise", "pro")
    # a plan change by replacement to a higher or the same tier loses nothing
    assert not loses_tier("pro", "enterprise") and not loses_tier("pro", "pro")
