"""What `make dev` prints at start: the dev tokens locally, none against a Supabase project."""

from __future__ import annotations

from local.__main__ import banner, is_supabase_host
from local.template_routes import list_routes, load_template

ROUTES = list_routes(load_template())


def test_locally_the_banner_gives_the_dev_tokens_and_hides_the_database_password() -> None:
    text = banner(
        "http://127.0.0.1:3000", "postgresql://postgres:pw-123@127.0.0.1:5432/oneai", ROUTES, "tok", "adm"
    )
    assert "export ONEAI_TOKEN=tok" in text
    assert "export ONEAI_ADMIN_TOKEN=adm" in text
    assert "pw-123" not in text


def test_against_a_supabase_project_no_token_is_printed() -> None:
    url = "postgresql://postgres:pw-123@db.abcd.supabase.co:5432/postgres"
    assert is_supabase_host(url)
    text = banner("http://127.0.0.1:3000", url, ROUTES, None)
    assert "ONEAI_TOKEN" not in text and "ONEAI_ADMIN_TOKEN" not in text
    assert "sign in through Supabase" in text
    assert "pw-123" not in text


def test_the_servers_log_as_the_tests_and_benchmarks_show_it_keeps_no_token() -> None:
    """A server that fails to start is reported with its output (local/dev_process.py), and the e2e tests
    keep it in a file: the banner's token lines read `<redacted>` there, while the lines as printed stay
    for whoever takes the tokens from them."""
    import subprocess

    from local.dev_process import LocalServerProcess

    text = banner(
        "http://127.0.0.1:3000", "postgresql://postgres@127.0.0.1:5432/oneai", ROUTES, "tok.a.b", "adm.c.d"
    )
    server = LocalServerProcess("http://127.0.0.1:3000", subprocess.Popen(["true"]), output=text.splitlines(True))
    server.process.wait()
    assert "export ONEAI_TOKEN=<redacted>" in server.log and "export ONEAI_ADMIN_TOKEN=<redacted>" in server.log
    assert "tok.a.b" not in server.log and "adm.c.d" not in server.log
    assert "export ONEAI_TOKEN=tok.a.b\n" in server.output
