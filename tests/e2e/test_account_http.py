"""The account API (quota, usage, profile) over HTTP through the local server (template routes -> API
Gateway events -> the Lambda handler), as the frontend sees it."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import psycopg
import pytest

from oneai.account import service
from oneai.account.models import UsageQuery
from oneai.db.connection import Database
from oneai.errors import QuotaExceededError
from oneai.quota import service as quota
from tests.conftest import AppUser, create_user, token_for

pytestmark = pytest.mark.e2e

QUOTA_FIELDS = {"used", "limit", "remaining", "resets_at", "percentage_used", "reset_frequency"}
PROFILE_FIELDS = {"id", "email", "name", "picture_url", "preferences", "subscription", "created_at"}
CSV_HEADER = "group,messages,prompt_tokens,completion_tokens,total_tokens,cost"
RANGE = {"from": "2026-03-01T00:00:00Z", "to": "2026-03-04T00:00:00Z"}

# (created_at, model, prompt_tokens, completion_tokens, cost) of the user under test.
ALICE_RECORDS = [
    ("2026-02-28T23:59:59Z", "openai/gpt-4o-mini", 1000, 1000, "9"),  # before `from`
    ("2026-03-01T00:00:00Z", "openai/gpt-4o-mini", 10, 20, "0.00100000"),  # `from` is inclusive
    ("2026-03-01T23:59:59Z", "anthropic/claude-3.5-haiku", 5, 7, "0.0005"),
    ("2026-03-02T00:00:00Z", "openai/gpt-4o-mini", 100, 200, "0.01"),
    ("2026-03-02T12:00:00+05:30", "google/gemini-2.5-flash", 1, 2, "0.00000123"),  # 06:30 UTC
    ("2026-03-03T08:00:00Z", "openai/gpt-4o-mini", 3, 4, "0"),
    ("2026-03-04T00:00:00Z", "openai/gpt-4o-mini", 1000, 1000, "9"),  # `to` is exclusive
]
# Someone else's usage in the same range, on a model alice used and on one she did not: never shown.
BOB_RECORDS = [
    ("2026-03-02T10:00:00Z", "openai/gpt-4o-mini", 7777, 7777, "1"),
    ("2026-03-02T10:00:00Z", "openai/gpt-4o", 7777, 7777, "1"),
]

BY_MODEL = [
    {"group": "anthropic/claude-3.5-haiku", "messages": 1, "prompt_tokens": 5, "completion_tokens": 7,
     "total_tokens": 12, "cost": "0.0005"},
    {"group": "google/gemini-2.5-flash", "messages": 1, "prompt_tokens": 1, "completion_tokens": 2,
     "total_tokens": 3, "cost": "0.00000123"},
    {"group": "openai/gpt-4o-mini", "messages": 3, "prompt_tokens": 113, "completion_tokens": 224,
     "total_tokens": 337, "cost": "0.011"},
]  # fmt: skip
BY_DAY = [
    {"group": "2026-03-01", "messages": 2, "prompt_tokens": 15, "completion_tokens": 27,
     "total_tokens": 42, "cost": "0.0015"},
    {"group": "2026-03-02", "messages": 2, "prompt_tokens": 101, "completion_tokens": 202,
     "total_tokens": 303, "cost": "0.01000123"},
    {"group": "2026-03-03", "messages": 1, "prompt_tokens": 3, "completion_tokens": 4,
     "total_tokens": 7, "cost": "0"},
]  # fmt: skip
TOTALS = {"messages": 5, "prompt_tokens": 119, "completion_tokens": 233, "total_tokens": 352, "cost": "0.01150123"}


@pytest.fixture
def client(local_server: Any) -> Any:
    with httpx.Client(base_url=local_server.base_url, timeout=20) as http:
        yield http


@pytest.fixture
def alice(database_url: str) -> AppUser:
    return create_user(database_url)


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    return dict(body["error"])


def fields_of(response: httpx.Response) -> list[str]:
    assert response.status_code == 422, response.text
    error = error_of(response)
    assert error["code"] == "VALIDATION_ERROR"
    return [e["field"] for e in error["details"]["errors"]]


def seed_usage(database_url: str, user: AppUser, records: list[tuple[str, str, int, int, str]]) -> None:
    """Usage records as the chat turn leaves them (written as admin, with explicit times)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        for created_at, model, prompt, completion, cost in records:
            conn.execute(
                "insert into public.usage_records (user_id, quota_key, requested_model, model_id, prompt_tokens,"
                " completion_tokens, cost, created_at) values (%s, 'small_messages', %s, %s, %s, %s, %s, %s)",
                (user.id, model, model, prompt, completion, Decimal(cost), datetime.fromisoformat(created_at)),
            )


def set_tier(database_url: str, user: AppUser, tier: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("update public.users set subscription_tier = %s where id = %s", (tier, user.id))


def parse_utc(text: str) -> datetime:
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text)


# ---------------------------------------------------------------- usage


@pytest.fixture
def usage_users(database_url: str) -> tuple[AppUser, AppUser]:
    alice, bob = create_user(database_url), create_user(database_url)
    seed_usage(database_url, alice, ALICE_RECORDS)
    seed_usage(database_url, bob, BOB_RECORDS)
    return alice, bob


def test_usage_per_model_and_per_day_sums_only_the_callers_records_in_the_range(
    client: httpx.Client, usage_users: tuple[AppUser, AppUser]
) -> None:
    # GIVEN alice's replies on three models over three days (and bob's, in the same range)
    alice, _ = usage_users

    # WHEN she asks per model and per day over [from, to)
    by_model = client.get("/user/usage", params={**RANGE, "group_by": "model"}, headers=alice.headers)
    by_day = client.get("/user/usage", params={**RANGE, "group_by": "day"}, headers=alice.headers)

    # THEN each group has the exact sums, ordered, with the totals of the range
    assert by_model.status_code == 200, by_model.text
    assert by_model.json() == {
        "from": "2026-03-01T00:00:00Z",
        "to": "2026-03-04T00:00:00Z",
        "group_by": "model",
        "items": BY_MODEL,
        "totals": TOTALS,
    }
    assert by_day.status_code == 200, by_day.text
    assert by_day.json()["items"] == BY_DAY and by_day.json()["totals"] == TOTALS
    # group_by defaults to model
    assert client.get("/user/usage", params=RANGE, headers=alice.headers).json()["items"] == BY_MODEL


def test_usage_of_a_user_without_records_is_empty_with_zero_totals(
    client: httpx.Client, usage_users: tuple[AppUser, AppUser], database_url: str
) -> None:
    carol = create_user(database_url)
    body = client.get("/user/usage", params=RANGE, headers=carol.headers).json()
    assert body["items"] == []
    assert body["totals"] == {
        "messages": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "total_tokens": 0,
        "cost": "0",
    }


def test_usage_as_csv_is_a_download_with_a_header_row_and_one_line_per_group(
    client: httpx.Client, usage_users: tuple[AppUser, AppUser]
) -> None:
    alice, _ = usage_users
    for group_by, expected in (("day", BY_DAY), ("model", BY_MODEL)):
        response = client.get(
            "/user/usage", params={**RANGE, "group_by": group_by, "format": "csv"}, headers=alice.headers
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/csv")
        assert 'attachment; filename="usage-2026-03-01-2026-03-04.csv"' in response.headers["content-disposition"]
        lines = response.text.splitlines()
        assert lines[0] == CSV_HEADER and len(lines) == 1 + len(expected)
        rows = list(csv.DictReader(io.StringIO(response.text)))
        assert rows == [{key: str(value) for key, value in row.items()} for row in expected]


def test_usage_defaults_to_the_last_30_days(client: httpx.Client, alice: AppUser, database_url: str) -> None:
    just_now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    seed_usage(database_url, alice, [(just_now.isoformat(), "openai/gpt-4o-mini", 2, 3, "0.25")])
    seed_usage(database_url, alice, [((just_now - timedelta(days=31)).isoformat(), "openai/gpt-4o", 2, 3, "1")])
    body = client.get("/user/usage", headers=alice.headers).json()
    assert parse_utc(body["to"]) - parse_utc(body["from"]) == timedelta(days=30)
    assert parse_utc(body["to"]) >= just_now
    assert [(i["group"], i["messages"], i["cost"]) for i in body["items"]] == [("openai/gpt-4o-mini", 1, "0.25")]
    # only `from`: up to now; only `to`: the 30 days before it
    since = (just_now - timedelta(days=40)).isoformat()
    assert (
        client.get("/user/usage", params={"from": since}, headers=alice.headers).json()["totals"]["messages"] == 2
    )
    until = client.get("/user/usage", params={"to": "2026-03-04"}, headers=alice.headers).json()
    assert (until["from"], until["to"]) == ("2026-02-02T00:00:00Z", "2026-03-04T00:00:00Z")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-03-04T00:00:00Z", "to": "2026-03-01T00:00:00Z"}, "to"),
        ({"from": "2026-03-01T00:00:00Z", "to": "2026-03-01T00:00:00Z"}, "to"),
        ({"from": "2024-01-01T00:00:00Z", "to": "2026-03-01T00:00:00Z"}, "to"),  # over 366 days
        ({"from": "yesterday"}, "from"),
        ({"group_by": "week"}, "group_by"),
        ({"format": "xml"}, "format"),
    ],
)
def test_bad_usage_queries_are_422_on_the_field(
    client: httpx.Client, alice: AppUser, params: dict[str, str], field: str
) -> None:
    assert fields_of(client.get("/user/usage", params=params, headers=alice.headers)) == [field]


def test_days_are_utc_days_whatever_the_sessions_time_zone(
    db: Database, usage_users: tuple[AppUser, AppUser]
) -> None:
    # GIVEN a session in India (UTC+05:30), where 2026-03-01T23:59:59Z is already March 2nd
    alice, _ = usage_users
    with db.user_transaction(alice.principal) as conn:
        conn.execute("set local timezone = 'Asia/Kolkata'")
        # WHEN the per-day report runs THEN its days are still UTC days
        report = service.usage_report(conn, UsageQuery.model_validate({**RANGE, "group_by": "day"}))
    assert [row.model_dump(mode="json") for row in report.items] == BY_DAY


# ---------------------------------------------------------------- quota


def test_quota_of_a_fresh_free_user_is_exactly_as_api_md_says(client: httpx.Client, alice: AppUser) -> None:
    before = datetime.now(UTC)
    response = client.get("/user/quota", headers=alice.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"subscription", "quotas"}
    assert body["subscription"] == {"tier": "free", "status": "active"}
    assert set(body["quotas"]) == {"small_messages", "large_messages", "image_generation"}
    expected = {
        "small_messages": (100, "monthly"),
        "large_messages": (20, "monthly"),
        "image_generation": (5, "3hour"),
    }
    for key, (limit, frequency) in expected.items():
        item = body["quotas"][key]
        assert set(item) == QUOTA_FIELDS, key
        assert (item["used"], item["limit"], item["remaining"]) == (0, limit, limit)
        assert item["percentage_used"] == 0 and item["reset_frequency"] == frequency
        assert parse_utc(item["resets_at"]) > before
    # 3hour resets within three hours; monthly ones on the 1st at 00:00 UTC
    assert parse_utc(body["quotas"]["image_generation"]["resets_at"]) <= before + timedelta(hours=3, minutes=1)
    monthly = parse_utc(body["quotas"]["small_messages"]["resets_at"])
    assert (monthly.day, monthly.hour, monthly.minute, monthly.second) == (1, 0, 0, 0)


def test_quota_shows_what_was_used(client: httpx.Client, alice: AppUser, db: Database) -> None:
    with db.user_transaction(alice.principal) as conn:
        quota.reserve(conn, "small_messages", 3)
        quota.reserve(conn, "image_generation", 4)
    quotas = client.get("/user/quota", headers=alice.headers).json()["quotas"]
    small, images = quotas["small_messages"], quotas["image_generation"]
    assert (small["used"], small["remaining"], small["percentage_used"]) == (3, 97, 3.0)
    assert (images["used"], images["remaining"], images["percentage_used"]) == (4, 1, 80.0)
    assert quotas["large_messages"]["used"] == 0


def test_quota_of_a_pro_user_shows_the_tier(client: httpx.Client, database_url: str) -> None:
    pro = create_user(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("select public.assign_tier_quotas(%s, 'pro', true)", (pro.id,))
        conn.execute("update public.users set subscription_tier = 'pro' where id = %s", (pro.id,))
    body = client.get("/user/quota", headers=pro.headers).json()
    assert body["subscription"] == {"tier": "pro", "status": "active"}
    assert body["quotas"]["small_messages"]["limit"] == 500


def test_quota_check_admits_without_reserving_and_refuses_like_a_reserve(
    client: httpx.Client, alice: AppUser, db: Database
) -> None:
    # GIVEN 4 of 5 images used
    with db.user_transaction(alice.principal) as conn:
        quota.reserve(conn, "image_generation", 4)

    # WHEN one more is checked THEN it would be admitted, and nothing is reserved
    allowed = client.post("/user/quota/check", json={"quota_key": "image_generation"}, headers=alice.headers)
    assert allowed.status_code == 200, allowed.text
    body = allowed.json()
    assert set(body) == {"allowed", "quota_key", "used", "limit", "remaining", "resets_at"}
    assert (body["allowed"], body["quota_key"], body["used"], body["limit"], body["remaining"]) == (
        True, "image_generation", 4, 5, 1,
    )  # fmt: skip
    parse_utc(body["resets_at"])
    again = client.post(
        "/user/quota/check", json={"quota_key": "image_generation", "units": 1}, headers=alice.headers
    )
    assert again.status_code == 200 and again.json()["used"] == 4

    # WHEN two are checked THEN 429 with the details of a refused reserve
    refused = client.post(
        "/user/quota/check", json={"quota_key": "image_generation", "units": 2}, headers=alice.headers
    )
    assert refused.status_code == 429
    error = error_of(refused)
    assert error["code"] == "QUOTA_EXCEEDED"
    assert set(error["details"]) == {"quota_key", "used", "limit", "resets_at", "tier"}
    assert {k: v for k, v in error["details"].items() if k != "resets_at"} == {
        "quota_key": "image_generation", "used": 4, "limit": 5, "tier": "free",
    }  # fmt: skip
    assert error["details"]["resets_at"] == body["resets_at"]
    with db.user_transaction(alice.principal) as conn, pytest.raises(QuotaExceededError) as reserve_refusal:
        quota.reserve(conn, "image_generation", 2)
    assert reserve_refusal.value.details == error["details"]
    # the quota itself is untouched by the checks
    assert client.get("/user/quota", headers=alice.headers).json()["quotas"]["image_generation"]["used"] == 4


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"quota_key": "video_generation"}, "quota_key"),
        ({}, "quota_key"),
        ({"quota_key": "small_messages", "units": 0}, "units"),
        ({"quota_key": "small_messages", "units": 1001}, "units"),
        ({"quota_key": "small_messages", "units": "2"}, "units"),
        ({"quota_key": "small_messages", "units": 1.5}, "units"),
        ({"quota_key": "small_messages", "reserve": True}, "reserve"),
    ],
)
def test_bad_quota_checks_are_422_on_the_field(
    client: httpx.Client, alice: AppUser, body: dict[str, Any], field: str
) -> None:
    assert fields_of(client.post("/user/quota/check", json=body, headers=alice.headers)) == [field]


# ---------------------------------------------------------------- profile


def test_profile_reads_and_patches_name_picture_and_merged_preferences(
    client: httpx.Client, alice: AppUser, database_url: str
) -> None:
    # GIVEN a new user's profile
    profile = client.get("/user/profile", headers=alice.headers)
    assert profile.status_code == 200, profile.text
    body = profile.json()
    assert set(body) == PROFILE_FIELDS
    assert body["id"] == str(alice.id) and body["email"] == alice.principal.email
    assert (body["name"], body["picture_url"], body["preferences"]) == (None, None, {})
    assert body["subscription"] == {"tier": "free", "status": "active"}
    parse_utc(body["created_at"])

    # WHEN name and picture change THEN they are stored (the name stripped)
    patched = client.patch(
        "/user/profile",
        json={"name": "  Ada Lovelace ", "picture_url": "https://cdn.example.test/a.png"},
        headers=alice.headers,
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["name"], patched.json()["picture_url"]) == (
        "Ada Lovelace",
        "https://cdn.example.test/a.png",
    )

    # WHEN preferences come in two PATCHes THEN they merge key by key
    first = {"preferences": {"theme": "dark", "language": "en-GB"}}
    assert client.patch("/user/profile", json=first, headers=alice.headers).status_code == 200
    second = {"preferences": {"send_on_enter": False, "default_model": "openai/gpt-4o-mini"}}
    merged = client.patch("/user/profile", json=second, headers=alice.headers).json()
    assert merged["preferences"] == {
        "theme": "dark", "language": "en-GB", "send_on_enter": False, "default_model": "openai/gpt-4o-mini",
    }  # fmt: skip
    assert merged["name"] == "Ada Lovelace"  # untouched by a preferences-only PATCH

    # a null preference is removed; a null name or picture is cleared
    cleared = client.patch(
        "/user/profile", json={"preferences": {"theme": None}, "picture_url": None}, headers=alice.headers
    ).json()
    assert "theme" not in cleared["preferences"] and cleared["preferences"]["language"] == "en-GB"
    assert cleared["picture_url"] is None and cleared["name"] == "Ada Lovelace"
    assert client.get("/user/profile", headers=alice.headers).json() == cleared

    # `preferences: null` removes them all
    assert (
        client.patch("/user/profile", json={"preferences": None}, headers=alice.headers).json()["preferences"]
        == {}
    )


def test_default_model_must_be_offered_and_in_the_callers_tier(
    client: httpx.Client, alice: AppUser, database_url: str
) -> None:
    # a model outside the free tier is a 422 on the body's field (not a 403: nothing is being used)
    outside = client.patch(
        "/user/profile",
        json={"preferences": {"default_model": "anthropic/claude-sonnet-4"}},
        headers=alice.headers,
    )
    assert fields_of(outside) == ["preferences.default_model"]
    unknown = client.patch(
        "/user/profile", json={"preferences": {"default_model": "acme/not-a-model"}}, headers=alice.headers
    )
    assert fields_of(unknown) == ["preferences.default_model"]
    assert client.get("/user/profile", headers=alice.headers).json()["preferences"] == {}

    # GIVEN the same user on pro WHEN the model is chosen again THEN it is accepted
    set_tier(database_url, alice, "pro")
    accepted = client.patch(
        "/user/profile",
        json={"preferences": {"default_model": "anthropic/claude-sonnet-4"}},
        headers=alice.headers,
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["preferences"] == {"default_model": "anthropic/claude-sonnet-4"}
    assert accepted.json()["subscription"]["tier"] == "pro"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"preferences": {"font": "serif"}}, "preferences.font"),  # not a preference
        ({"preferences": {"theme": "blue"}}, "preferences.theme"),
        ({"preferences": {"language": "english please"}}, "preferences.language"),
        ({"preferences": {"send_on_enter": "yes"}}, "preferences.send_on_enter"),
        ({"preferences": ["theme"]}, "preferences"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"picture_url": "http://cdn.example.test/a.png"}, "picture_url"),  # https only
        ({"picture_url": "javascript:alert(1)"}, "picture_url"),
        ({"picture_url": "https://cdn.example.test/" + "a" * 2048}, "picture_url"),
        ({"subscription_tier": "enterprise"}, "subscription_tier"),  # tier, status and email are not yours
        ({"subscription": {"tier": "pro"}}, "subscription"),
        ({"email": "someone@else.test"}, "email"),
        ({"is_admin": True}, "is_admin"),
        ({}, "body"),  # nothing to change
    ],
)
def test_bad_profile_patches_are_422_and_change_nothing(
    client: httpx.Client, alice: AppUser, database_url: str, body: dict[str, Any], field: str
) -> None:
    response = client.patch("/user/profile", json=body, headers=alice.headers)
    assert fields_of(response) == [field]
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "select name, picture_url, preferences, email, subscription_tier, is_admin from public.users"
            " where id = %s",
            (alice.id,),
        ).fetchone()
    assert row == (None, None, {}, alice.principal.email, "free", False)


# ---------------------------------------------------------------- auth and the document

ROUTES = [
    ("GET", "/user/quota", None),
    ("POST", "/user/quota/check", {"quota_key": "small_messages"}),
    ("GET", "/user/usage", None),
    ("GET", "/user/profile", None),
    ("PATCH", "/user/profile", {"name": "Mallory"}),
    ("DELETE", "/user", None),
    ("GET", "/user/export", None),
    ("POST", "/user/api-keys", {"name": "Mallory's key"}),
    ("GET", "/user/api-keys", None),
    ("DELETE", "/user/api-keys/{id}", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_every_route_is_401_without_a_valid_token(
    client: httpx.Client, database_url: str, method: str, path: str, body: dict[str, Any] | None
) -> None:
    expired = token_for(uuid.uuid4(), expires_in_seconds=-3600)
    for headers in ({}, {"authorization": "Bearer not-a-jwt"}, {"authorization": f"Bearer {expired}"}):
        response = client.request(method, path, json=body, headers=headers)
        assert response.status_code == 401, (path, headers)
        assert error_of(response)["code"] == "UNAUTHORIZED"


def test_a_suspended_user_is_403(client: httpx.Client, database_url: str) -> None:
    suspended = create_user(database_url, suspended=True)
    response = client.get("/user/quota", headers=suspended.headers)
    assert response.status_code == 403 and error_of(response)["code"] == "FORBIDDEN"


def test_the_openapi_document_is_served_and_lists_every_route(client: httpx.Client) -> None:
    response = client.get("/user/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    public = {("GET", "/notifications/unsubscribe"), ("POST", "/notifications/unsubscribe")}  # no token: a link
    assert {(m.upper(), p) for p, ops in paths.items() for m in ops} == {(m, p) for m, p, _ in ROUTES} | public
    assert "text/csv" in paths["/user/usage"]["get"]["responses"]["200"]["content"]
    assert "429" in paths["/user/quota/check"]["post"]["responses"]
