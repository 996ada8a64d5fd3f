"""The functions of migrations 20261129050000 (low-balance warnings for every debit) and 20261129070000 (a
custom key's base_url moves only with its key) are the service's own: neither an anonymous caller nor a
signed-in member, the workspace's owner included, may execute them, and a member who calls the refund or
the adjustment that use them is refused, with the balance and the ledger as they were."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import psycopg
import pytest

from oneai.db.connection import Database
from tests.integration.test_credits import account, ledger
from tests.integration.test_workspaces_rls import team

pytestmark = pytest.mark.integration

INTERNAL = (
    "oneai_private.debit_account(public.workspace_credits, numeric)",
    "oneai_private.low_balance_notice(public.workspace_credits)",
    "oneai_private.provider_key_base_url_moves_with_its_key()",
)


def test_nobody_but_the_service_executes_the_debit_and_its_notice(db: Database) -> None:
    with db.service_transaction() as conn:
        rows = conn.execute(
            "select f as fn, has_function_privilege('anon', f::regprocedure, 'execute') as anon,"
            " has_function_privilege('authenticated', f::regprocedure, 'execute') as authenticated"
            " from unnest(%s::text[]) as f",
            (list(INTERNAL),),
        ).fetchall()
    assert {r["fn"]: (r["anon"], r["authenticated"]) for r in rows} == dict.fromkeys(INTERNAL, (False, False))


@pytest.mark.parametrize(
    "call",
    [
        "select oneai_private.adjust_credits(%(ws)s, -10, 'mine now', %(me)s)",
        "select oneai_private.apply_credit_refund('rfnd_x', 'pay_x', 1000, 'INR')",
        "select oneai_private.debit_account(c, 10) from public.workspace_credits c where c.workspace_id = %(ws)s",
    ],
)
def test_the_workspaces_owner_cannot_debit_it_directly(
    db: Database, database_url: str, make_user: Any, call: str
) -> None:
    owner = make_user()
    workspace_id = team(db, owner)
    with db.service_transaction() as conn:
        conn.execute(
            "update public.workspace_credits set balance = 500, low_balance_threshold = 100 where workspace_id = %s",
            (workspace_id,),
        )
    before = (account(database_url, workspace_id), ledger(database_url, workspace_id))
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.user_transaction(owner.principal) as conn:
        conn.execute(call, {"ws": workspace_id, "me": owner.id})
    assert (account(database_url, workspace_id), ledger(database_url, workspace_id)) == before
    assert account(database_url, workspace_id)["balance"] == Decimal("500")
