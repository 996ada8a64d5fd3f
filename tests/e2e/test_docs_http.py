"""The docs API over HTTP through the local server (template routes -> API Gateway events -> the Lambda
handler), as the frontend's help pages use it: search and read the guide without signing in, leave
feedback signed in or not."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import psycopg
import pytest

from local.dev_process import LocalServerProcess
from oneai.guide.models import MAX_COMMENT_LENGTH, MAX_QUERY_LENGTH
from tests.conftest import AppUser, create_user, token_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def http(local_server: LocalServerProcess) -> Any:
    with httpx.Client(base_url=local_server.base_url, timeout=10) as client:
        yield client


def stored_feedback(database_url: str, feedback_id: str) -> dict[str, Any] | None:
    with psycopg.connect(database_url, row_factory=psycopg.rows.dict_row) as conn:
        return conn.execute(
            "select page_slug, user_id, helpful, comment from public.guide_feedback where id = %s", (feedback_id,)
        ).fetchone()


def feedback_count(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("select count(*) from public.guide_feedback").fetchone()
    assert row is not None
    return int(row[0])


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()["error"]
    assert body["code"] == code
    return body


def test_anyone_searches_the_guide_best_match_first(http: httpx.Client) -> None:
    response = http.get("/docs/search", params={"q": "when does my quota reset"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"items", "next_cursor", "corrected_query"}
    assert body["corrected_query"] is None  # searched as typed
    first = body["items"][0]
    assert set(first) == {"slug", "title", "snippet"}
    assert (first["slug"], first["title"]) == ("quotas-and-resets", "Quotas and resets")
    assert "<mark>" in first["snippet"]


def test_a_misspelt_title_and_a_query_matching_nothing_over_http(http: httpx.Client) -> None:
    found = http.get("/docs/search", params={"q": "plans and biling"}).json()["items"]
    assert found[0]["slug"] == "plans-and-billing"
    assert http.get("/docs/search", params={"q": "xylophone zebra"}).json() == {
        "items": [],
        "next_cursor": None,
        "corrected_query": None,
    }


def test_a_misspelt_word_is_corrected_and_the_answer_says_what_was_searched(http: httpx.Client) -> None:
    response = http.get("/docs/search", params={"q": "how do I cancel my subscirption", "limit": 1})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["corrected_query"] == "how do I cancel my subscription"
    [first] = body["items"]
    assert first["slug"] == "plans-and-billing"
    assert "<mark>" in first["snippet"]
    # the next page of the same search is the same corrected search
    following = http.get(
        "/docs/search", params={"q": "how do I cancel my subscirption", "limit": 1, "cursor": body["next_cursor"]}
    ).json()
    assert following["corrected_query"] == "how do I cancel my subscription"
    assert following["items"][0]["slug"] != "plans-and-billing"


@pytest.mark.parametrize(
    "params",
    [{}, {"q": ""}, {"q": "x" * (MAX_QUERY_LENGTH + 1)}, {"q": "quota\x00"}, {"q": "quota", "limit": "0"}],
)
def test_a_bad_search_is_a_validation_error(http: httpx.Client, params: dict[str, str]) -> None:
    assert_error(http.get("/docs/search", params=params), 422, "VALIDATION_ERROR")


def test_anyone_reads_a_page_and_an_unknown_one_is_not_found(http: httpx.Client) -> None:
    response = http.get("/docs/getting-started")
    assert response.status_code == 200
    page = response.json()
    assert set(page) == {"slug", "title", "markdown", "updated_at"}
    assert page["title"] == "Getting started"
    assert page["markdown"].startswith("# Getting started\n")
    assert page["updated_at"].endswith("Z")
    for path in ("/docs/no-such-page", "/docs/Getting-Started", "/docs/getting_started"):
        assert_error(http.get(path), 404, "NOT_FOUND")


def test_anonymous_feedback_is_stored_without_a_user(http: httpx.Client, database_url: str) -> None:
    response = http.post("/docs/feedback", json={"slug": "sharing-and-export", "helpful": True})
    assert response.status_code == 201, response.text
    receipt = response.json()
    assert (receipt["slug"], receipt["helpful"], receipt["comment"], receipt["signed_in"]) == (
        "sharing-and-export",
        True,
        None,
        False,
    )
    assert stored_feedback(database_url, receipt["id"]) == {
        "page_slug": "sharing-and-export",
        "user_id": None,
        "helpful": True,
        "comment": None,
    }


def test_signed_in_feedback_is_attributed_to_the_user(http: httpx.Client, database_url: str) -> None:
    user: AppUser = create_user(database_url)
    response = http.post(
        "/docs/feedback",
        json={"slug": "quotas-and-resets", "helpful": False, "comment": "  When is 00:00 UTC for me?  "},
        headers=user.headers,
    )
    assert response.status_code == 201, response.text
    receipt = response.json()
    assert (receipt["signed_in"], receipt["comment"]) == (True, "When is 00:00 UTC for me?")
    assert stored_feedback(database_url, receipt["id"]) == {
        "page_slug": "quotas-and-resets",
        "user_id": user.id,
        "helpful": False,
        "comment": "When is 00:00 UTC for me?",
    }


def test_an_invalid_token_is_refused_and_writes_nothing(http: httpx.Client, database_url: str) -> None:
    before = feedback_count(database_url)
    for authorization in (
        "Bearer not-a-token",
        f"Bearer {token_for(uuid.uuid4())[:-4]}AAAA",  # signature tampered
        f"Bearer {token_for(uuid.uuid4(), expires_in_seconds=-3600)}",  # expired
        "Basic dXNlcjpwYXNz",
    ):
        response = http.post(
            "/docs/feedback",
            json={"slug": "getting-started", "helpful": True},
            headers={"authorization": authorization},
        )
        assert_error(response, 401, "UNAUTHORIZED")
    assert feedback_count(database_url) == before


def test_feedback_on_an_unknown_page_is_not_found(http: httpx.Client, database_url: str) -> None:
    before = feedback_count(database_url)
    response = http.post("/docs/feedback", json={"slug": "no-such-page", "helpful": True})
    assert_error(response, 404, "NOT_FOUND")
    assert feedback_count(database_url) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"slug": "getting-started"}, "helpful"),
        ({"slug": "getting-started", "helpful": "yes"}, "helpful"),
        ({"slug": "getting-started", "helpful": 1}, "helpful"),
        ({"helpful": True}, "slug"),
        ({"slug": "", "helpful": True}, "slug"),
        ({"slug": "getting-started", "helpful": True, "comment": "x" * (MAX_COMMENT_LENGTH + 1)}, "comment"),
        ({"slug": "getting-started", "helpful": True, "comment": "nul \x00 inside"}, "comment"),
        ({"slug": "getting-started", "helpful": True, "comment": 42}, "comment"),
        ({"slug": "getting-started", "helpful": True, "rating": 5}, "rating"),
    ],
)
def test_bad_feedback_bodies_are_validation_errors(
    http: httpx.Client, database_url: str, body: dict[str, Any], field: str
) -> None:
    before = feedback_count(database_url)
    error = assert_error(http.post("/docs/feedback", json=body), 422, "VALIDATION_ERROR")
    assert field in {e["field"] for e in error["details"]["errors"]}
    assert feedback_count(database_url) == before


def test_a_comment_at_the_limit_is_kept_whole(http: httpx.Client, database_url: str) -> None:
    comment = "é" * MAX_COMMENT_LENGTH  # characters, not bytes
    response = http.post("/docs/feedback", json={"slug": "getting-started", "helpful": True, "comment": comment})
    assert response.status_code == 201, response.text
    stored = stored_feedback(database_url, response.json()["id"])
    assert stored is not None
    assert stored["comment"] == comment


def test_a_lone_surrogate_is_a_validation_error_not_a_failure(http: httpx.Client, database_url: str) -> None:
    before = feedback_count(database_url)
    body = b'{"slug": "getting-started", "helpful": false, "comment": "half \\ud800 a character"}'
    response = http.post("/docs/feedback", content=body, headers={"content-type": "application/json"})
    error = assert_error(response, 422, "VALIDATION_ERROR")
    assert {e["field"] for e in error["details"]["errors"]} == {"comment"}
    # Bytes that are not UTF-8 in the query string arrive as U+FFFD: still a search, never a failure.
    assert http.get("/docs/search?q=quota%ED%A0%80").status_code == 200
    assert feedback_count(database_url) == before


def test_malformed_json_is_a_bad_request(http: httpx.Client) -> None:
    response = http.post("/docs/feedback", content=b'{"slug": ', headers={"content-type": "application/json"})
    assert_error(response, 400, "BAD_REQUEST")


# --- the admin summary, on the admin function ---------------------------------------------------------------


def page_summary(http: httpx.Client, headers: dict[str, str], slug: str) -> dict[str, Any]:
    response = http.get("/admin/docs/feedback", params={"comments": 1}, headers=headers)
    assert response.status_code == 200, response.text
    return next(item for item in response.json()["items"] if item["slug"] == slug)


def test_admins_see_the_feedback_left_over_http_and_others_are_refused(
    http: httpx.Client, database_url: str
) -> None:
    reader, admin = create_user(database_url), create_user(database_url)
    admin_headers = {
        "authorization": f"Bearer {token_for(admin.id, extra_claims={'app_metadata': {'role': 'admin'}})}"
    }
    assert_error(http.get("/admin/docs/feedback", headers=reader.headers), 403, "FORBIDDEN")
    assert_error(http.get("/admin/docs/feedback"), 401, "UNAUTHORIZED")

    slug = "revisions-and-branches"
    before = page_summary(http, admin_headers, slug)
    comment = f"Where is the branch switcher? {uuid.uuid4()}"
    for body, headers in (
        ({"slug": slug, "helpful": True}, {}),
        ({"slug": slug, "helpful": True}, reader.headers),
        ({"slug": slug, "helpful": False, "comment": comment}, {}),
    ):
        assert http.post("/docs/feedback", json=body, headers=headers).status_code == 201

    after = page_summary(http, admin_headers, slug)
    assert (after["helpful"], after["not_helpful"], after["total"]) == (
        before["helpful"] + 2,
        before["not_helpful"] + 1,
        before["total"] + 3,
    )
    assert [c["comment"] for c in after["latest_comments"]] == [comment]
    assert after["latest_comments"][0]["user_id"] is None  # left anonymously
