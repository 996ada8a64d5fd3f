"""The user guide's search, pages and feedback on real PostgreSQL with the real migrations, over the real
guide in docs/guide (indexed by the run's fixtures as the deploy step indexes it)."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from oneai.auth import Principal
from oneai.config import override_settings
from oneai.db.connection import Database
from oneai.errors import ForbiddenError, NotFoundError
from oneai.guide import service
from oneai.guide.index import index_guide
from oneai.guide.models import FeedbackRequest, SearchQuery, SearchResults
from oneai.guide.pages import load_pages
from oneai.quota.tiers import QUOTA_KEYS, TIERS
from oneai.web import CurrentPrincipal, create_app
from oneai.web.guide_feedback_admin import guide_feedback_router
from tests.conftest import REPO_ROOT, create_user, own_database, token_for

GUIDE_DIR = REPO_ROOT / "docs" / "guide"

# What a reader would type to find each page's main topic.
TOPIC_QUERIES = {
    "getting-started": "how do I get started",
    "chatting-and-models": "which model should I choose",
    "revisions-and-branches": "edit a message I already sent",
    "sharing-and-export": "share a conversation with a link",
    "attachments-and-images": "attach a picture",
    "quotas-and-resets": "when does my quota reset",
    "plans-and-billing": "cancel my subscription",
    "api-keys-and-openai-compatible-api": "create an API key",
    "account-and-privacy": "delete my account",
}
# Each page's title as someone in a hurry types it.
MISSPELT_TITLES = {
    "getting-started": "geting startd",
    "chatting-and-models": "chating and modles",
    "revisions-and-branches": "revisons and branchs",
    "sharing-and-export": "sharring and exprot",
    "attachments-and-images": "atachments and imagse",
    "quotas-and-resets": "qoutas and resets",
    "plans-and-billing": "plans and biling",
    "api-keys-and-openai-compatible-api": "api kees",
    "account-and-privacy": "acount and privcy",
}


def search(db: Database, q: str, **kwargs: Any) -> SearchResults:
    with db.anon_transaction() as conn:
        return service.search(conn, SearchQuery(q=q, **kwargs))


def test_the_topic_table_covers_every_page_of_the_guide() -> None:
    slugs = {page.slug for page in load_pages(GUIDE_DIR)}
    assert slugs == set(TOPIC_QUERIES) == set(MISSPELT_TITLES)


@pytest.mark.parametrize(("slug", "query"), TOPIC_QUERIES.items())
def test_a_query_for_a_pages_main_topic_returns_that_page_first(db: Database, slug: str, query: str) -> None:
    results = search(db, query)
    assert results.items, query
    assert results.items[0].slug == slug
    assert "<mark>" in results.items[0].snippet  # the reader sees why it matched


@pytest.mark.parametrize(("slug", "query"), MISSPELT_TITLES.items())
def test_a_misspelt_page_title_still_finds_that_page_first(db: Database, slug: str, query: str) -> None:
    results = search(db, query)
    assert results.items, query
    assert results.items[0].slug == slug
    assert results.items[0].title == next(p.title for p in load_pages(GUIDE_DIR) if p.slug == slug)


# A query with a misspelt word, what is searched instead, and the page that answers it first.
MISSPELT_WORDS = {
    "quotta": ("quota", "quotas-and-resets"),  # a letter doubled
    "subscirption": ("subscription", "plans-and-billing"),  # two letters swapped (full text found nothing)
    "invocie": ("invoice", "plans-and-billing"),  # a swap in a word found only in a page's body
    "atachmnts": ("attachments", "attachments-and-images"),  # two letters left out of a long word
    "delete an atachment": ("delete an attachments", "attachments-and-images"),  # one typo among words
    "how do I cancel my subscirption": ("how do I cancel my subscription", "plans-and-billing"),
    "Which modle should I choose": ("Which model should I choose", "chatting-and-models"),
}


@pytest.mark.parametrize(("query", "expected"), MISSPELT_WORDS.items())
def test_a_misspelt_word_is_corrected_and_ranked_as_the_right_spelling(
    db: Database, query: str, expected: tuple[str, str]
) -> None:
    corrected, slug = expected
    results = search(db, query)
    assert results.corrected_query == corrected
    assert results.items[0].slug == slug
    assert "<mark>" in results.items[0].snippet  # found by full text, the corrected word marked
    # the same pages in the same order as the query typed right
    assert results.items == search(db, corrected).items


@pytest.mark.parametrize(
    ("query", "corrected"),
    [('"Quotta reset"', '"Quota reset"'), ("plan -subscirption", "plan -subscription"), ("quotta or biling", "quota or billing"),
     ("QUOTTA", "QUOTA")],
)  # fmt: skip
def test_a_corrected_query_keeps_its_phrases_exclusions_alternatives_and_capitals(
    db: Database, query: str, corrected: str
) -> None:
    results = search(db, query)
    assert results.corrected_query == corrected
    assert results.items
    assert results.items == search(db, corrected).items


@pytest.mark.parametrize(
    "word",
    [
        "plain",  # said once in the guide, one edit from "plan" (said 29 times)
        "quotes",  # once, one edit from "quotas"
        "resetting",  # not in the guide in this form, but "reset" and "resets" are
        "razorpay",
    ],
)
def test_a_word_the_guide_holds_is_never_corrected(db: Database, word: str) -> None:
    results = search(db, word)
    assert results.corrected_query is None
    assert results.items
    assert "<mark>" in results.items[0].snippet


@pytest.mark.parametrize(
    ("a", "b", "edits"),
    [
        ("quota", "quota", 0),
        ("quotta", "quota", 1),  # a letter added
        ("invocie", "invoice", 1),  # two neighbours swapped: one edit, not two
        ("subscirption", "subscription", 1),
        ("atachmnts", "attachments", 2),
        ("kitten", "sitting", 3),
        ("", "abc", 3),
        ("ca", "abc", 3),  # optimal string alignment: a swapped pair is not edited again
        ("a" * 100, "a", 99),
        ("a" * 101, "a", None),  # not a word: no quadratic work for whoever calls it
    ],
)
def test_the_edit_distance_counts_a_swap_as_one_edit(db: Database, a: str, b: str, edits: int | None) -> None:
    with db.anon_transaction() as conn:
        row = conn.execute("select public.guide_edit_distance(%s, %s) as edits", (a, b)).fetchone()
    assert row == {"edits": edits}


@pytest.mark.parametrize("query", ["xylophone zebra", "qwertyuiop", "zzzzzz"])
def test_nonsense_is_not_corrected_into_something_and_finds_nothing(db: Database, query: str) -> None:
    assert search(db, query) == SearchResults(items=[], next_cursor=None, corrected_query=None)


def test_every_page_of_a_corrected_search_says_what_was_searched(db: Database) -> None:
    everything = search(db, "quota", limit=50).items
    seen, cursor = [], None
    while True:
        page = search(db, "quotta", limit=2, cursor=cursor)
        assert page.corrected_query == "quota"
        seen.extend(page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == everything


@pytest.mark.parametrize("query", ["xylophone zebra", "the and of", "!!!", "<script>alert(1)</script>", "€€€"])
def test_a_query_matching_nothing_answers_an_empty_list(db: Database, query: str) -> None:
    results = search(db, query)
    assert results.items == []
    assert results.next_cursor is None


def test_the_title_outranks_a_heading_which_outranks_the_body(tmp_path: Path, fresh_db: Database) -> None:
    write_pages(
        tmp_path,
        {
            "01-body-page.md": "# Apples\n\nWe talk about the lighthouse here, once.\n",
            "02-heading-page.md": "# Pears\n\n## The lighthouse\n\nNothing else.\n",
            "03-title-page.md": "# Lighthouse\n\nNothing else.\n",
        },
    )
    index_guide(fresh_db.settings.require_database_url(), tmp_path)
    assert [item.slug for item in search(fresh_db, "lighthouse").items] == [
        "title-page",
        "heading-page",
        "body-page",
    ]


def test_snippets_mark_matches_and_escape_the_pages_text(tmp_path: Path, fresh_db: Database) -> None:
    text = "# Markup\n\nType 2 < 3 & 5 > 4 or <b>bold</b> into the lighthouse box.\n"
    write_pages(tmp_path, {"01-markup.md": text})
    index_guide(fresh_db.settings.require_database_url(), tmp_path)
    [item] = search(fresh_db, "lighthouse").items
    assert "<mark>lighthouse</mark>" in item.snippet
    assert "2 &lt; 3 &amp; 5 &gt; 4" in item.snippet
    assert "<b>" not in item.snippet  # the only tags in a snippet are its <mark>s


def test_results_come_in_pages_best_first(db: Database) -> None:
    everything = search(db, "plan", limit=50).items
    assert len(everything) >= 3
    seen = []
    cursor = None
    while True:
        page = search(db, "plan", limit=2, cursor=cursor)
        seen.extend(page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert [i.slug for i in seen] == [i.slug for i in everything]


def test_a_page_is_read_whole_with_its_generated_tier_table(db: Database) -> None:
    with db.anon_transaction() as conn:
        page = service.get_page(conn, "quotas-and-resets")
    assert page.title == "Quotas and resets"
    assert page.markdown == (GUIDE_DIR / "06-quotas-and-resets.md").read_text(encoding="utf-8")
    for tier in TIERS.values():
        assert tier.display_name in page.markdown
        for key in QUOTA_KEYS:
            assert f"{tier.quotas[key].limit:,} " in page.markdown
    assert page.updated_at.tzinfo is not None


def test_an_unknown_page_is_not_found(db: Database) -> None:
    with db.anon_transaction() as conn, pytest.raises(NotFoundError):
        service.get_page(conn, "no-such-page")


# --- the index ------------------------------------------------------------------------------------------


@pytest.fixture
def fresh_db(admin_database_url: str) -> Iterator[Database]:
    """A database of its own (migrated, empty guide), for tests that rebuild the index or count feedback."""
    with (
        own_database(admin_database_url, "guide") as url,
        override_settings(database_url=SecretStr(url)) as settings,
    ):
        database = Database(settings)
        yield database
        database.close()


def write_pages(folder: Path, pages: dict[str, str]) -> None:
    for name, text in pages.items():
        (folder / name).write_text(text, encoding="utf-8")


def page_times(db: Database) -> dict[str, Any]:
    with db.service_transaction() as conn:
        return {
            r["slug"]: r["updated_at"] for r in conn.execute("select slug, updated_at from public.guide_pages")
        }


def test_rebuilding_the_index_is_idempotent_and_follows_the_folder(tmp_path: Path, fresh_db: Database) -> None:
    guide = tmp_path / "guide"
    shutil.copytree(GUIDE_DIR, guide)
    url = fresh_db.settings.require_database_url()

    first = index_guide(url, guide)
    assert (first.pages, first.written, first.removed) == (9, 9, 0)
    before = page_times(fresh_db)

    # WHEN nothing changed THEN nothing is written and no page looks updated
    again = index_guide(url, guide)
    assert (again.written, again.removed) == (0, 0)
    assert page_times(fresh_db) == before

    # WHEN one page changes and one leaves the folder THEN exactly those change in the index
    sharing = guide / "04-sharing-and-export.md"
    sharing.write_text(sharing.read_text(encoding="utf-8") + "\nShare links can carry a lighthouse.\n", "utf-8")
    (guide / "05-attachments-and-images.md").unlink()
    changed = index_guide(url, guide)
    assert (changed.pages, changed.written, changed.removed) == (8, 1, 1)
    after = page_times(fresh_db)
    assert after["sharing-and-export"] > before["sharing-and-export"]
    assert {slug: t for slug, t in after.items() if slug != "sharing-and-export"} == {
        slug: t for slug, t in before.items() if slug not in {"sharing-and-export", "attachments-and-images"}
    }
    assert [i.slug for i in search(fresh_db, "lighthouse").items] == ["sharing-and-export"]
    assert "attachments-and-images" not in {i.slug for i in search(fresh_db, "attach a picture").items}


def test_the_words_corrected_to_follow_the_pages_at_every_rebuild(tmp_path: Path, fresh_db: Database) -> None:
    url = fresh_db.settings.require_database_url()
    write_pages(tmp_path, {"01-lighthouse.md": "# Lighthouse\n\nThe keeper lights the lantern every night.\n"})
    index_guide(url, tmp_path)
    found = search(fresh_db, "lantren")
    assert (found.corrected_query, [i.slug for i in found.items]) == ("lantern", ["lighthouse"])

    # WHEN the page no longer says "lantern" THEN nothing is corrected to it; its new words are
    write_pages(tmp_path, {"01-lighthouse.md": "# Lighthouse\n\nThe keeper lights the beacon every night.\n"})
    index_guide(url, tmp_path)
    assert search(fresh_db, "lantren") == SearchResults(items=[], next_cursor=None, corrected_query=None)
    found = search(fresh_db, "baecon")
    assert (found.corrected_query, [i.slug for i in found.items]) == ("beacon", ["lighthouse"])


def test_concurrent_rebuilds_leave_one_consistent_index(tmp_path: Path, fresh_db: Database) -> None:
    from concurrent.futures import ThreadPoolExecutor

    url = fresh_db.settings.require_database_url()
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: index_guide(url, GUIDE_DIR), range(4)))
    # The advisory lock queues them: one writes every page, the others find nothing to do.
    assert sorted(r.written for r in results) == [0, 0, 0, 9]
    assert len(page_times(fresh_db)) == 9


# --- feedback and its summary ---------------------------------------------------------------------------


def leave(db: Database, slug: str, helpful: bool, comment: str | None = None, user: Any = None) -> uuid.UUID:
    body = FeedbackRequest(slug=slug, helpful=helpful, comment=comment)
    if user is None:
        with db.anon_transaction() as conn:
            return service.submit_feedback(conn, body, user_id=None).id
    with db.user_transaction(user.principal) as conn:
        return service.submit_feedback(conn, body, user_id=user.id).id


def test_the_admin_summary_counts_feedback_per_page_with_the_latest_comments(fresh_db: Database) -> None:
    url = fresh_db.settings.require_database_url()
    index_guide(url, GUIDE_DIR)
    alice = create_user(url)
    leave(fresh_db, "quotas-and-resets", True)
    leave(fresh_db, "quotas-and-resets", True, "Clear table, thanks")
    leave(fresh_db, "quotas-and-resets", False, "When exactly is the reset?", user=alice)
    for n in range(7):
        leave(fresh_db, "plans-and-billing", False, f"comment {n}")
    leave(fresh_db, "plans-and-billing", True, "   ")  # spaces only: no comment

    with fresh_db.service_transaction() as conn:
        summary = service.feedback_summary(conn, comments_per_page=5)
    by_slug = {item.slug: item for item in summary.items}
    assert len(by_slug) == 9  # every page, with or without feedback

    billing = by_slug["plans-and-billing"]
    assert (billing.helpful, billing.not_helpful, billing.total) == (1, 7, 8)
    assert [c.comment for c in billing.latest_comments] == [f"comment {n}" for n in (6, 5, 4, 3, 2)]
    quotas = by_slug["quotas-and-resets"]
    assert (quotas.helpful, quotas.not_helpful, quotas.total) == (2, 1, 3)
    assert [(c.comment, c.helpful, c.user_id) for c in quotas.latest_comments] == [
        ("When exactly is the reset?", False, alice.id),
        ("Clear table, thanks", True, None),
    ]
    untouched = by_slug["getting-started"]
    assert (untouched.total, untouched.latest_comments, untouched.last_feedback_at) == (0, [], None)
    # The least helpful pages come first.
    assert [item.slug for item in summary.items[:2]] == ["plans-and-billing", "quotas-and-resets"]


def test_feedback_on_a_page_that_left_the_guide_stays_in_the_summary(tmp_path: Path, fresh_db: Database) -> None:
    url = fresh_db.settings.require_database_url()
    write_pages(tmp_path, {"01-old.md": "# Old page\n\nText.\n", "02-kept.md": "# Kept\n\nText.\n"})
    index_guide(url, tmp_path)
    leave(fresh_db, "old", False, "outdated")
    (tmp_path / "01-old.md").unlink()
    index_guide(url, tmp_path)

    with fresh_db.service_transaction() as conn:
        items = {item.slug: item for item in service.feedback_summary(conn).items}
    assert items["old"].title is None
    assert (items["old"].not_helpful, items["old"].latest_comments[0].comment) == (1, "outdated")
    with fresh_db.anon_transaction() as conn, pytest.raises(NotFoundError):
        service.submit_feedback(conn, FeedbackRequest(slug="old", helpful=True), user_id=None)


def test_feedback_on_an_unknown_page_writes_nothing(fresh_db: Database) -> None:
    index_guide(fresh_db.settings.require_database_url(), GUIDE_DIR)
    with fresh_db.anon_transaction() as conn, pytest.raises(NotFoundError):
        service.submit_feedback(conn, FeedbackRequest(slug="no-such-page", helpful=True), user_id=None)
    with fresh_db.service_transaction() as conn:
        assert conn.execute("select count(*) as n from public.guide_feedback").fetchone() == {"n": 0}


def test_readers_cannot_read_feedback_or_sign_it_as_someone_else(db: Database, make_user: Any) -> None:
    alice, bob = make_user(), make_user()
    leave(db, "getting-started", False, "alice's private remark", user=alice)
    insert = "insert into public.guide_feedback (page_slug, user_id, helpful) values ('getting-started', %s, true)"
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.anon_transaction() as conn:
        conn.execute("select comment from public.guide_feedback")
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.user_transaction(bob.principal) as conn:
        conn.execute("select comment from public.guide_feedback")
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.user_transaction(bob.principal) as conn:
        conn.execute(insert, (alice.id,))  # RLS: only as yourself
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.anon_transaction() as conn:
        conn.execute(insert, (alice.id,))  # anonymous feedback names nobody
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.anon_transaction() as conn:
        conn.execute("update public.guide_pages set title = 'defaced'")


# --- the admin route, mounted as the admin function will mount it -------------------------------------------


def require_admin(principal: CurrentPrincipal) -> Principal:
    """A stand-in for the admin function's own check (API.md: app_metadata.role = "admin")."""
    if (principal.claims.get("app_metadata") or {}).get("role") != "admin":
        raise ForbiddenError()
    return principal


def test_the_admin_route_answers_admins_only_with_the_summary(fresh_db: Database) -> None:
    url = fresh_db.settings.require_database_url()
    index_guide(url, GUIDE_DIR)
    reader, admin = create_user(url), create_user(url)
    leave(fresh_db, "api-keys-and-openai-compatible-api", False, "Which base URL?", user=reader)

    app = create_app(title="admin", prefix="/admin", routers=[guide_feedback_router(require_admin)])
    admin_token = token_for(admin.id, extra_claims={"app_metadata": {"role": "admin"}})
    with TestClient(app) as client:
        assert client.get("/admin/docs/feedback").status_code == 401
        assert client.get("/admin/docs/feedback", headers=reader.headers).status_code == 403
        response = client.get(
            "/admin/docs/feedback", params={"comments": 1}, headers={"authorization": f"Bearer {admin_token}"}
        )
    assert response.status_code == 200, response.text
    first = response.json()["items"][0]
    assert (first["slug"], first["helpful"], first["not_helpful"], first["total"]) == (
        "api-keys-and-openai-compatible-api",
        0,
        1,
        1,
    )
    assert [(c["comment"], c["user_id"]) for c in first["latest_comments"]] == [
        ("Which base URL?", str(reader.id))
    ]


@pytest.mark.parametrize(
    "query",
    ["\\", "'", "o'neil's quota", "quota:*", "foo & bar | !baz", '"unclosed phrase', "-", "or", "a <-> b",
     "🙂 quota 🙂", "e-mail sign-in", "''''", "(((", "plan -billing", '"reset" or "refill"', "\u200b\ufeff"],
)  # fmt: skip
def test_any_text_is_a_query_not_syntax(db: Database, query: str) -> None:
    # WHEN the query holds tsquery operators, quotes or odd characters THEN it is searched for, never an error
    results = search(db, query)
    assert all(item.slug and item.title for item in results.items)


@pytest.mark.parametrize(
    "cursor",
    [
        "not-a-cursor",
        "eyJvZmZzZXQiOi0xfQ",
        "eyJvZmZzZXQiOjFlKzMwfQ",
        "eyJvZmZzZXQiOjk5OTk5OTk5OTk5OTk5OTk5OTk5fQ",
        "eyJvZmZzZXQiOiIxIn0",
    ],
)
def test_a_forged_cursor_is_a_validation_error(db: Database, cursor: str) -> None:
    from oneai.errors import ValidationError

    with db.anon_transaction() as conn, pytest.raises(ValidationError):
        service.search(conn, SearchQuery(q="plan", cursor=cursor))
