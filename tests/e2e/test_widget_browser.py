"""The widget in a real browser (issue 27): Debian's chromium, driven by Playwright for Python, loads a
page of another local origin that embeds `<script src="<API>/widget.js" data-chatbot=...>` from the local
server (what `make dev` runs). What a visitor would notice: the launcher opens a panel styled by the
chatbot's settings and usable from the keyboard; the page's CSS cannot restyle it; a phone shows it full
screen; a page of a disallowed origin gets nothing; the visitor id survives a reload and the conversation
comes back; markup in a greeting, a question, a saved or a streamed reply stays inert text.

A visitor asks the real public chat (the local server, the fake OpenRouter behind it): the answer streams
in, its source under it, the conversation comes back after a reload, and its rating lands in the owner's
inbox. Where a test needs an answer the server would not give on cue (markup in a reply, a 429 or a 402 in
a row, a refused token), the browser's request is answered with a recorded reply stream
(tests/fixtures/widget/reply_stream.sse) or a refusal, which the widget reads as it would the real ones.
Screenshots of each state go to `.oneai/screenshots/widget/` (not committed)."""

from __future__ import annotations

import http.server
import json
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from playwright.sync_api import sync_playwright

from local.fake_openrouter import FakeOpenRouter, Reply
from tests.conftest import REPO_ROOT
from tests.e2e.conftest import LocalServer
from tests.widget_support import (
    KNOWLEDGE_MODEL,
    QUESTION,
    WidgetChatbot,
    create_chatbot,
    knowledge_chatbot,
    owner_headers,
    seed_conversation,
    set_chatbot,
)

CHROMIUM = "/usr/bin/chromium"
USAGE = {"prompt_tokens": 30, "completion_tokens": 5, "total_tokens": 35, "cost": 0.0002}
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = REPO_ROOT / ".oneai" / "screenshots" / "widget"
RECORDED_REPLY = (REPO_ROOT / "tests" / "fixtures" / "widget" / "reply_stream.sse").read_bytes()
HOSTILE_CSS = """
* { font-family: "Comic Sans MS", cursive !important; color: #f0f !important; letter-spacing: 4px !important;
    box-sizing: content-box !important; line-height: 3 !important; }
button { background: #ff0 !important; border: 9px dashed red !important; border-radius: 0 !important;
         width: 300px !important; height: 10px !important; padding: 40px !important; position: static !important;
         transform: rotate(12deg) !important; display: inline !important; }
div { display: inline !important; margin: 50px !important; padding: 30px !important; opacity: 0.3 !important;
      position: relative !important; background: #0ff !important; }
"""
STYLE = {
    "title": "Acme help",
    "greeting": "Hi! Ask me anything.",
    "color": "#16a34a",
    "position": "bottom-left",
    "suggested_questions": ["Where is my order?", "How do returns work?"],
}
PROBED = [  # computed styles compared with and without the page's CSS
    "color",
    "background-color",
    "font-family",
    "font-size",
    "letter-spacing",
    "line-height",
    "width",
    "height",
    "padding-top",
    "border-top-width",
    "border-top-style",
    "border-radius",
    "display",
    "position",
    "opacity",
    "transform",
    "margin-top",
    "box-sizing",
]


class PageServer:
    """Serves host pages on a port of its own: another origin than the API's. Its pages are kept in
    `pages` by path; `http://127.0.0.1:<port>` and `http://localhost:<port>` are two different origins."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        pages = self.pages

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = pages.get(self.path.split("?")[0])
                if body is None:
                    self.send_error(404)
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("content-type", "text/html; charset=utf-8")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def origin(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}"

    def page(self, path: str, api: str, chatbot: WidgetChatbot, css: str = "") -> str:
        self.pages[path] = (
            "<!doctype html><html lang=en><head><meta charset=utf-8>"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>Shop</title><style>{css}</style></head><body><h1>Shop</h1>"
            "<div class=content><button id=host-button>Buy</button><p>Page text.</p></div>"
            f'<script src="{api}/widget.js" data-chatbot="{chatbot.public_id}" async></script>'
            "</body></html>"
        )
        return path

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def pages() -> Iterator[PageServer]:
    server = PageServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: `make e2e` installs Debian's chromium (as root), or apt-get install chromium"
        )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    yield context
    context.close()


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def widget(page: Any) -> Any:
    return page.locator("oneai-chat-widget")


def open_panel(page: Any) -> Any:
    launcher = widget(page).locator("button.l")
    launcher.click()
    panel = widget(page).locator("[role=dialog]")
    panel.wait_for(state="visible")
    return panel


def styles(page: Any, selector: str) -> dict[str, str]:
    return page.evaluate(
        """([selector, names]) => {
            const node = document.querySelector('oneai-chat-widget').shadowRoot.querySelector(selector);
            const style = getComputedStyle(node);
            return Object.fromEntries(names.map((n) => [n, style.getPropertyValue(n)]));
        }""",
        [selector, PROBED],
    )


def test_the_launcher_opens_a_panel_styled_by_the_settings_and_usable_from_the_keyboard(
    local_server: LocalServer, database_url: str, pages: PageServer, context: Any
) -> None:
    chatbot = create_chatbot(database_url, widget={**STYLE, "allowed_origins": [pages.origin()]})
    page = context.new_page()
    page.goto(pages.origin() + pages.page("/styled", local_server.base_url, chatbot))
    launcher = widget(page).locator("button.l")
    launcher.wait_for()
    assert launcher.get_attribute("aria-label") == "Open chat: Acme help"
    assert launcher.get_attribute("aria-expanded") == "false"
    assert styles(page, "button.l")["background-color"] == "rgb(22, 163, 74)"  # #16a34a
    assert launcher.bounding_box()["x"] < 100  # bottom-left
    shot(page, "closed")

    panel = open_panel(page)
    assert launcher.get_attribute("aria-expanded") == "true"
    assert panel.get_attribute("aria-label") == "Acme help"
    assert panel.locator("h2").inner_text() == "Acme help"
    assert panel.locator(".b.a").first.inner_text() == "Hi! Ask me anything."
    questions = panel.locator("[aria-label='Suggested questions'] button")
    assert questions.all_inner_texts() == STYLE["suggested_questions"]
    log = panel.locator("[role=log]")
    assert log.get_attribute("aria-live") == "polite"
    focused = page.evaluate(
        "document.querySelector('oneai-chat-widget').shadowRoot.activeElement.getAttribute('aria-label')"
    )
    assert focused == "Your message"  # focus moved into the panel
    shot(page, "open")

    page.keyboard.press("Escape")
    panel.wait_for(state="hidden")
    focused = page.evaluate("document.querySelector('oneai-chat-widget').shadowRoot.activeElement.className")
    assert focused.startswith("l ")  # back on the launcher
    page.keyboard.press("Enter")  # the launcher is a button: Enter opens it again
    panel.wait_for(state="visible")


def test_the_pages_css_does_not_change_the_widget(
    local_server: LocalServer, database_url: str, pages: PageServer, context: Any
) -> None:
    chatbot = create_chatbot(database_url, widget=STYLE)
    measured = {}
    for name, css in (("plain", ""), ("hostile", HOSTILE_CSS)):
        page = context.new_page()
        page.goto(pages.origin() + pages.page(f"/{name}", local_server.base_url, chatbot, css=css))
        open_panel(page)
        measured[name] = {
            selector: styles(page, selector)
            for selector in ("button.l", "[role=dialog]", ".h", ".m", ".b.a", ".f textarea", ".q button")
        }
        measured[name]["host"] = page.evaluate(
            "(() => { const r = document.querySelector('oneai-chat-widget').getBoundingClientRect(); return [r.width, r.height]; })()"
        )
        shot(page, f"css-{name}")
        page.close()
    assert measured["hostile"] == measured["plain"]
    assert measured["plain"]["button.l"]["font-family"] != '"Comic Sans MS", cursive'


def test_a_phone_sized_viewport_shows_the_panel_full_screen(
    local_server: LocalServer, database_url: str, pages: PageServer, browser: Any
) -> None:
    chatbot = create_chatbot(database_url, widget=STYLE)
    context = browser.new_context(viewport={"width": 375, "height": 667}, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        page.goto(pages.origin() + pages.page("/phone", local_server.base_url, chatbot))
        box = open_panel(page).bounding_box()
        assert (box["x"], box["y"], box["width"], box["height"]) == (0, 0, 375, 667)
        # the launcher does not cover the panel's input: the panel is on top (its header closes it)
        on_top = page.evaluate(
            "document.querySelector('oneai-chat-widget').shadowRoot.elementFromPoint(48, 630).closest('[role=dialog]') !== null"
        )
        assert on_top
        shot(page, "phone")
    finally:
        context.close()


def test_a_page_of_a_disallowed_origin_gets_nothing(
    local_server: LocalServer, database_url: str, pages: PageServer, context: Any
) -> None:
    chatbot = create_chatbot(database_url, widget={**STYLE, "allowed_origins": [pages.origin()]})
    page = context.new_page()
    path = pages.page("/elsewhere", local_server.base_url, chatbot)
    settings_url = f"{local_server.base_url}/public/chatbots/{chatbot.public_id}"
    answered: list[int] = []
    failed: list[str] = []
    page.on("response", lambda r: answered.append(r.status) if r.url == settings_url else None)
    page.on("requestfailed", lambda r: failed.append(r.failure or "") if r.url == settings_url else None)
    page.goto(pages.origin("localhost") + path)  # another origin than the allowed one
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(500)
    # The settings request was refused (403 without a CORS header: the browser blocks it, so the script
    # reads nothing) and no launcher was added.
    assert answered == [403] or failed, (answered, failed)
    assert widget(page).count() == 0
    shot(page, "disallowed-origin")


def test_the_visitor_is_kept_across_a_reload_and_the_conversation_comes_back(
    local_server: LocalServer, database_url: str, pages: PageServer, context: Any
) -> None:
    chatbot = create_chatbot(database_url, widget=STYLE)
    page = context.new_page()
    page.goto(pages.origin() + pages.page("/resume", local_server.base_url, chatbot))
    with page.expect_response(lambda r: r.url.endswith("/sessions")) as opened:
        open_panel(page)
    assert opened.value.status == 200
    first = opened.value.request
    visitor = json.loads(first.post_data)["visitor_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", visitor)  # 128 random bits
    assert page.evaluate(f"localStorage.getItem('oneai-widget:{chatbot.public_id}:visitor')") == visitor
    assert json.loads(first.post_data)["page_url"] == pages.origin() + "/resume"

    conversation = seed_conversation(
        database_url,
        chatbot,
        visitor,
        [
            ("user", "How do returns work?", None),
            (
                "assistant",
                'Within 30 days. <img src=x onerror="window.__pwned=1"> <a href="javascript:window.__pwned=2">form</a>',
                [
                    {
                        "chunk_id": "c1",
                        "document_id": "d1",
                        "filename": "returns.pdf",
                        "page": 2,
                        "chunk_index": 0,
                        "score": 0.8,
                    }
                ],
            ),
        ],
    )
    page.evaluate(f"localStorage.setItem('oneai-widget:{chatbot.public_id}:conversation', '{conversation}')")
    page.reload()
    with page.expect_request(lambda r: r.url.endswith("/sessions")) as again:
        panel = open_panel(page)
    assert json.loads(again.value.post_data)["visitor_id"] == visitor  # the same visitor after the reload
    reply = panel.locator(".b.a").nth(1)
    reply.wait_for()
    assert panel.locator(".b.u").inner_text() == "How do returns work?"
    assert panel.locator("[aria-label='Suggested questions']").count() == 0  # not offered again mid-conversation
    assert reply.locator("li").inner_text() == "returns.pdf p. 2"
    assert '<img src=x onerror="window.__pwned=1">' in reply.inner_text()  # shown as text
    assert panel.locator("[role=log] img, [role=log] a").count() == 0
    assert page.evaluate("window.__pwned") is None
    assert panel.locator(".r").is_visible()  # the rating control, at the end of the conversation
    panel.locator(".r button[aria-label='4 of 5']").click()
    panel.locator(".n", has_text="Thank you for your rating.").wait_for()
    assert panel.locator(".r button[aria-label='4 of 5']").get_attribute("aria-pressed") == "true"
    with psycopg.connect(database_url) as conn:
        rating = conn.execute(
            "select rating from public.visitor_conversations where id = %s", (conversation,)
        ).fetchone()
    assert rating == (4,)
    assert context.cookies() == []  # no cookie read or written
    shot(page, "resumed")


def test_a_visitor_asks_sees_the_answer_stream_in_with_its_source_reloads_and_rates_it(
    local_server: LocalServer, database_url: str, pages: PageServer, context: Any, openrouter: FakeOpenRouter
) -> None:
    # GIVEN a chatbot on a refunds policy, embedded in a shop's page; the model answers in four slow chunks
    chatbot = knowledge_chatbot(database_url, widget=STYLE)
    openrouter.script(
        Reply(chunks=["Refunds ", "are paid ", "within ", "14 days."], usage=USAGE, delay=0.4),
        model=KNOWLEDGE_MODEL,
    )
    page = context.new_page()
    page.goto(pages.origin() + pages.page("/ask", local_server.base_url, chatbot))
    panel = open_panel(page)
    # WHEN the visitor asks
    box = panel.locator("textarea")
    box.fill(QUESTION)
    box.press("Enter")
    # THEN the answer shows while it is still arriving, then whole, with its source under it
    page.wait_for_function(
        """() => {
            const reply = document.querySelector('oneai-chat-widget').shadowRoot.querySelectorAll('.b.a')[1];
            return reply && reply.getAttribute('aria-busy') === 'true' && reply.textContent.startsWith('Refunds')
                && !reply.textContent.includes('14 days');
        }""",
        timeout=10_000,
    )
    shot(page, "streaming")
    reply = panel.locator(".b.a").nth(1)
    reply.locator("ul").wait_for()
    assert reply.evaluate("node => node.firstChild.textContent") == "Refunds are paid within 14 days."
    assert reply.locator("li").all_inner_texts() == ["refunds.pdf p. 2"]
    assert panel.locator("[aria-label='Suggested questions']").count() == 0  # offered before a question only
    shot(page, "answered")
    # WHEN the page reloads and the panel opens again
    page.reload()
    panel = open_panel(page)
    # THEN the conversation is there, from the server
    again = panel.locator(".b.a").nth(1)
    again.locator("li").wait_for()
    assert panel.locator(".b.u").inner_text() == QUESTION
    assert again.locator("li").inner_text() == "refunds.pdf p. 2"
    assert again.evaluate("node => node.firstChild.textContent") == "Refunds are paid within 14 days."
    # WHEN the visitor rates it 5
    panel.locator(".r button[aria-label='5 of 5']").click()
    panel.locator(".n", has_text="Thank you for your rating.").wait_for()
    shot(page, "rated")
    # THEN the owner's inbox row has the rating and both messages
    inbox = httpx.get(
        f"{local_server.base_url}/chatbots/{chatbot.id}/conversations",
        headers=owner_headers(database_url, chatbot),
        timeout=30,
    ).json()
    assert [(item["rating"], item["messages"]) for item in inbox["items"]] == [(5, 2)]
    assert context.cookies() == []
    # WHEN the chatbot has answered all the messages its plan allows today (the free plan's 100)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("update public.widget_message_counts set used = 100 where chatbot_id = %s", (chatbot.id,))
    box = panel.locator("textarea")
    box.fill("One more?")
    box.press("Enter")
    # THEN the widget says so politely, not in seconds
    panel.locator(".n", has_text="The assistant has answered all it can for today.").wait_for()
    shot(page, "daily-limit")


# The public chat's 429 when the chatbot's messages of the day are used up (oneai.widget.chat), as sent at
# 23:50 UTC: its Retry-After is the 600 seconds to the next UTC day.
CHATBOT_DAY_USED_UP_AT_2350 = json.dumps(
    {
        "error": {
            "code": "RATE_LIMITED",
            "message": "This assistant has answered all the messages it may today; try again tomorrow",
            "details": {"bucket": "widget_chatbot_day", "limit": 100, "used": 100, "retry_after": 600},
        }
    }
).encode()


def test_markup_in_settings_and_in_a_streamed_reply_is_inert_and_refusals_read_politely(
    local_server: LocalServer, database_url: str, pages: PageServer, context: Any
) -> None:
    hostile = {
        "title": "<b>Help</b>",
        "greeting": '<img src=x onerror="window.__pwned=1">Hello',
        "suggested_questions": ['<a href="javascript:window.__pwned=2">click</a>', "Returns?"],
        "color": "#16a34a",
    }
    chatbot = create_chatbot(database_url, widget=hostile)
    page = context.new_page()
    origin = pages.origin()
    chat_url = f"{local_server.base_url}/public/chatbots/{chatbot.public_id}/chat"
    answers = [
        {"status": 200, "headers": {"content-type": "text/event-stream"}, "body": RECORDED_REPLY},
        {"status": 429, "headers": {"retry-after": "7"}, "body": b'{"error":{"code":"RATE_LIMITED"}}'},
        # the chatbot's messages of the day used up at 23:50 UTC: ten minutes to the next day, still "today"
        {"status": 429, "headers": {"retry-after": "600"}, "body": CHATBOT_DAY_USED_UP_AT_2350},
        {"status": 402, "headers": {}, "body": b'{"error":{"code":"INSUFFICIENT_CREDITS"}}'},
    ]
    sent = []

    def replay(route: Any) -> None:  # the public chat of part 2, answered with a recorded reply
        sent.append(route.request)
        answer = answers[len(sent) - 1]
        headers = {
            "access-control-allow-origin": origin,
            "access-control-expose-headers": "retry-after",
            **answer["headers"],
        }
        route.fulfill(status=answer["status"], headers=headers, body=answer["body"])

    page.route(chat_url, replay)
    page.goto(origin + pages.page("/inert", local_server.base_url, chatbot))
    panel = open_panel(page)
    assert panel.locator("h2").inner_text() == "<b>Help</b>"
    assert panel.locator(".b.a").first.inner_text() == '<img src=x onerror="window.__pwned=1">Hello'
    assert panel.locator(".q button").first.inner_text() == '<a href="javascript:window.__pwned=2">click</a>'

    box = panel.locator("textarea")
    box.fill("Can I return this?")
    box.press("Enter")  # Enter sends
    reply = panel.locator(".b.a").nth(1)
    reply.locator("ul").wait_for()
    assert json.loads(sent[0].post_data) == {"content": "Can I return this?"}
    assert sent[0].headers["authorization"].startswith("Bearer wst1.")
    text = reply.evaluate("node => node.firstChild.textContent")
    assert text.startswith("Returns are free within 30 days") and text.endswith("Obrigado! 🙂")
    assert reply.locator("li").all_inner_texts() == [
        "returns-policy.pdf p. 2",
        "<img src=x onerror=alert(1)>.html p. 1",
    ]
    assert panel.locator("[role=log] img, [role=log] a, [role=log] b").count() == 0
    assert page.evaluate("window.__pwned") is None
    assert panel.locator(".r button").count() == 5
    assert page.evaluate(f"localStorage.getItem('oneai-widget:{chatbot.public_id}:conversation')") == (
        "0b8e4f2a-9c3d-4e5f-a6b7-c8d9e0f1a2b3"
    )
    shot(page, "streamed-reply")

    box.fill("And exchanges?")
    box.press("Enter")
    panel.locator(".n", has_text="Please wait 7 seconds").wait_for()
    box.fill("One more?")
    box.press("Enter")
    panel.locator(".n", has_text="The assistant has answered all it can for today.").wait_for()
    assert panel.locator(".n", has_text="minutes").count() == 0
    box.fill("Hello?")
    panel.locator("button[type=submit]").click()
    panel.locator(".n", has_text="The assistant is unavailable right now.").wait_for()
    shot(page, "refusals")


def test_a_disabled_chatbot_shows_unavailable(
    local_server: LocalServer, database_url: str, pages: PageServer, context: Any
) -> None:
    chatbot = create_chatbot(database_url, widget=STYLE)
    set_chatbot(database_url, chatbot, status="disabled")
    page = context.new_page()
    page.goto(pages.origin() + pages.page("/disabled", local_server.base_url, chatbot))
    panel = open_panel(page)
    panel.locator(".n", has_text="The assistant is unavailable right now.").wait_for()
    with psycopg.connect(database_url) as conn:  # no session was opened for it
        assert conn.execute(
            "select count(*) from public.widget_visitors where chatbot_id = %s", (chatbot.id,)
        ).fetchone() == (0,)
    shot(page, "unavailable")


def test_chromium_is_debians(browser: Any) -> None:
    assert shutil.which("chromium") == CHROMIUM and browser.version


def test_a_refused_session_token_is_replaced_once_and_the_message_sent_again(
    local_server: LocalServer, database_url: str, pages: PageServer, context: Any
) -> None:
    chatbot = create_chatbot(database_url, widget=STYLE)
    page = context.new_page()
    origin = pages.origin()
    sent: list[Any] = []

    def replay(route: Any) -> None:  # the first try's token is refused (expired, say), the second answered
        sent.append(route.request)
        cors = {"access-control-allow-origin": origin}
        if len(sent) == 1:
            route.fulfill(status=401, headers=cors, body=b'{"error":{"code":"UNAUTHORIZED"}}')
        else:
            route.fulfill(status=200, headers={**cors, "content-type": "text/event-stream"}, body=RECORDED_REPLY)

    page.route(f"{local_server.base_url}/public/chatbots/{chatbot.public_id}/chat", replay)
    page.goto(origin + pages.page("/renew", local_server.base_url, chatbot))
    with page.expect_response(lambda r: r.url.endswith("/sessions")):  # the first session, opened with the panel
        panel = open_panel(page)
    with page.expect_response(lambda r: r.url.endswith("/sessions")) as renewed:
        panel.locator("textarea").fill("Hello")
        panel.locator("textarea").press("Enter")
        panel.locator(".b.a ul").wait_for()
    tokens = [request.headers["authorization"] for request in sent]
    assert len(tokens) == 2 and tokens[0] != tokens[1]  # sent again with the new session's token
    assert tokens[1] == f"Bearer {renewed.value.json()['session_token']}"
