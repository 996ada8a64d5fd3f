"""What the workspace membership check costs a list under Row Level Security (issue 23): 10,000 rows of
one workspace read as `authenticated` (the member, under RLS) against the same query as `service_role`
(no RLS), in the same run, on the same database.

The list is the workspace's pending invitations (`public.workspace_invitations`: 10,000 of the
workspace, and 10,000 of another workspace the member does not belong to, which RLS must leave out; the
service role's query names the workspace, as the member's does). It is read in two policy forms:
- per row, as 20261123100000_workspaces.sql wrote the policy: `has_workspace_role(workspace_id,
  'admin')`, a security definer call whose argument is the row's column: run once per row;
- once per statement, as 20261123120000_workspace_admin.sql rewrote it: `workspace_id in (select
  workspaces_with_role('admin'))`, a subquery that does not depend on the row: run once, each row a
  hash lookup.
The bench measures the migrated (once-per-statement) form first, then puts the original policy back in
its throwaway database and measures that (second, so on a cache at least as warm). Each case times the
query's execution and the fetch of all 10,000 rows over a local socket, after a warm-up, as the median of
many runs; the service role's figure is taken right after the member's, on the same data. The EXPLAIN
ANALYZE of each form shows where the helper runs and how often (`loops`).
"""

from __future__ import annotations

import json
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg

from bench._db import throwaway_database
from bench._report import SUMMARY_HEADERS, summarize, summary_row, table

ROWS = 10_000
RUNS = 60
QUICK_RUNS = 12
WARMUP = 5

LIST = """
select id, email, role, created_at, expires_at
from public.workspace_invitations
where workspace_id = %(workspace)s
order by created_at, id"""

PER_ROW_POLICY = """
drop policy workspace_invitations_admins_read on public.workspace_invitations;
create policy workspace_invitations_admins_read on public.workspace_invitations for select to authenticated
  using (oneai_private.has_workspace_role(workspace_id, 'admin'))"""


def _user(conn: psycopg.Connection[Any]) -> uuid.UUID:
    user_id = uuid.uuid4()
    conn.execute("insert into auth.users (id, email) values (%s, %s)", (user_id, f"{user_id.hex[:8]}@bench.test"))
    return user_id


def _workspace_with_invitations(conn: psycopg.Connection[Any], owner: uuid.UUID, count: int) -> uuid.UUID:
    row = conn.execute(
        "insert into public.workspaces (name, slug, owner_id) values ('Bench', %s, %s) returning id",
        (f"bench-{uuid.uuid4().hex[:12]}", owner),
    ).fetchone()
    assert row is not None
    workspace: uuid.UUID = row[0]
    conn.execute(
        "insert into public.workspace_members (workspace_id, user_id, role) values (%s, %s, 'owner')",
        (workspace, owner),
    )
    conn.execute(
        "insert into public.workspace_invitations (workspace_id, email, role, token_hash, invited_by)"
        " select %s, 'invitee' || n || '@bench.test', 'viewer', sha256(gen_random_uuid()::text::bytea), %s"
        " from generate_series(1, %s) n",
        (workspace, owner, count),
    )
    return workspace


def _scoped(conn: psycopg.Connection[Any], role: str, user_id: uuid.UUID) -> None:
    """The scope a user (or service) transaction of `oneai.db.connection` sets, transaction-locally."""
    claims = json.dumps({"sub": str(user_id), "role": role})
    conn.execute(
        "select set_config('role', %s, true), set_config('request.jwt.claims', %s, true),"
        " set_config('request.jwt.claim.sub', %s, true)",
        (role, claims, str(user_id)),
    )


def _timings(url: str, role: str, user_id: uuid.UUID, workspace: uuid.UUID, runs: int) -> list[float]:
    samples: list[float] = []
    with psycopg.connect(url) as conn:
        for index in range(WARMUP + runs):
            _scoped(conn, role, user_id)
            started = time.perf_counter()
            rows = conn.execute(LIST, {"workspace": workspace}).fetchall()
            elapsed = time.perf_counter() - started
            conn.rollback()
            if len(rows) != ROWS:
                raise RuntimeError(f"{role} read {len(rows)} rows, expected {ROWS}")
            if index >= WARMUP:
                samples.append(elapsed)
    return samples


def _plan(url: str, role: str, user_id: uuid.UUID, workspace: uuid.UUID) -> tuple[list[str], float]:
    """The plan's lines (where the check runs, how often) and the executor's own time in ms."""
    with psycopg.connect(url) as conn:
        _scoped(conn, role, user_id)
        rows = conn.execute(
            "explain (analyze, verbose, costs off, format json) " + LIST, {"workspace": workspace}
        ).fetchone()
        conn.rollback()
    assert rows is not None
    document = rows[0][0]
    lines: list[str] = []

    def walk(node: dict[str, Any], depth: int) -> None:
        label = node["Node Type"] + (f" ({node['Subplan Name']})" if "Subplan Name" in node else "")
        detail = node.get("Filter") or node.get("Index Cond") or ""
        lines.append(f"{'  ' * depth}{label}: loops={node['Actual Loops']} {detail}".rstrip())
        for child in node.get("Plans", []):
            walk(child, depth + 1)

    walk(document["Plan"], 0)
    return lines, float(document["Execution Time"])


Case = tuple[list[float], list[float], list[str], float, float]


def _case(url: str, member: uuid.UUID, workspace: uuid.UUID, runs: int) -> Case:
    """(member's timings, service role's timings, member's plan, member's and service's executor ms)."""
    with_rls = _timings(url, "authenticated", member, workspace, runs)
    without = _timings(url, "service_role", member, workspace, runs)
    plan, executor_ms = _plan(url, "authenticated", member, workspace)
    _, service_executor_ms = _plan(url, "service_role", member, workspace)
    return with_rls, without, plan, executor_ms, service_executor_ms


def run(*, quick: bool = False) -> None:
    runs = QUICK_RUNS if quick else RUNS
    print(f"workspace_rls: the membership check on a list of {ROWS:,} rows, under RLS vs without ({runs} runs)")
    with throwaway_database() as url:
        with psycopg.connect(url, autocommit=True) as conn:
            member, stranger = _user(conn), _user(conn)
            workspace = _workspace_with_invitations(conn, member, ROWS)
            _workspace_with_invitations(conn, stranger, ROWS)  # not the member's: RLS leaves it out
            conn.execute("analyze public.workspace_invitations, public.workspace_members, public.workspaces")

        measured: dict[str, Case] = {}
        forms: list[tuple[str, Callable[[], None]]] = [
            ("once per statement (20261123120000)", lambda: None),
            ("per row (20261123100000)", lambda: _restore_per_row_policy(url)),
        ]
        for label, prepare in forms:
            prepare()
            measured[label] = _case(url, member, workspace, runs)

        rows: list[list[str]] = []
        for label, (with_rls, without, *_) in measured.items():
            ratio = statistics.median(with_rls) / statistics.median(without)
            rows.append(summary_row(f"{label}: member under RLS", summarize(with_rls)))
            rows.append(summary_row(f"{label}: service role, no RLS", summarize(without)))
            rows.append([f"  ratio RLS / no RLS (medians): {ratio:.2f}x", "", "", ""])
        print(table(SUMMARY_HEADERS, rows))
        for label, (_, _, plan, executor_ms, service_ms) in measured.items():
            print(
                f"\n  EXPLAIN ANALYZE as the member, {label}: executor {executor_ms:.1f} ms"
                f" (service role {service_ms:.1f} ms, {executor_ms / service_ms:.1f}x):"
            )
            for line in plan:
                print(f"    {line}")


def _restore_per_row_policy(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(PER_ROW_POLICY)
