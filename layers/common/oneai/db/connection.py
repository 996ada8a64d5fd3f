"""One PostgreSQL connection per Lambda container, opened lazily and reused across warm invocations.

Every unit of work is a transaction with an explicit scope:
- `user_transaction(principal)`: role `authenticated` and the JWT claims set transaction-locally, so the
  Row Level Security policies apply to our own queries exactly as they do to Supabase's API;
- `anon_transaction()`: role `anon`, for public reads (shared links) and anonymous writes (guide
  feedback, with the rate check of the caller's source);
- `service_transaction()`: role `service_role`, which bypasses RLS, for webhooks, sweeps and provisioning.

The scope is set by the transaction's first statement, which also proves the connection is alive: if the
server dropped it (idle timeout, failover, pooler restart), the connection is opened again and the
statement retried once, because nothing has been done yet. `prepare_threshold=None` because Supabase's
transaction pooler cannot keep prepared statements; only transaction-local settings are used for the
same reason.

The caller comes as plain values (`oneai.db.scope`: a user id and claims, a rate check's parameters).
What a new user needs (the dev user's row, the welcome) is not this module's: the container's database
(`oneai.database`) passes in the hooks of the user provisioning service (`oneai.account.provisioning`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import Jsonb

from oneai.config import Settings
from oneai.db.scope import Caller, RateOutcome, RateRequest
from oneai.errors import ForbiddenError, RateLimitedError, UnauthorizedError, UnavailableError

Connection = psycopg.Connection[DictRow]

_T = TypeVar("_T")

_SCOPE = sql.SQL(
    "select set_config('role', {role}, true),"
    " set_config('request.jwt.claims', {claims}, true),"
    " set_config('request.jwt.claim.sub', {sub}, true),"
    " set_config('request.jwt.claim.role', {role}, true),"
    " set_config('statement_timeout', {timeout}, true)"
)
# `welcome_due`: the user's first authenticated request(s), until UserCreated is announced.
_USER_STATE = sql.SQL(
    "select suspended_at, welcome_announced_at is null as welcome_due from public.users where id = {sub}"
)
# The request's rate check (oneai.ratelimit): one conditional UPDATE in the same round trip, as that user.
_TAKE_RATE_LIMIT = sql.SQL(
    "select admitted, remaining, reset_seconds, retry_after_seconds"
    " from oneai_private.take_rate_limit({bucket}, {per_minute}, {burst})"
)
# An anonymous request's check (oneai.ratelimit): the bucket of its source, the same GCRA, as `anon`.
_TAKE_SOURCE_RATE_LIMIT = sql.SQL(
    "select admitted, remaining, reset_seconds, retry_after_seconds"
    " from oneai_anon.take_source_rate_limit({source}, {bucket}, {per_minute}, {burst})"
)
# A request with an API key notes the key's use (written at most once a minute).
_TOUCH_API_KEY = sql.SQL("select oneai_private.touch_api_key({key_id})")
# After an admitted check: the request's work starts here, so a failure undoes the work, not the token.
_WORK_SAVEPOINT = "oneai_request"


@dataclass(frozen=True, slots=True)
class _Scope:
    role: str
    claims: str = "{}"
    sub: str = ""

    def statement(
        self, timeout_ms: int, *, check_user: bool, extra: tuple[sql.Composable, ...] = ()
    ) -> sql.Composed:
        values = {
            "role": sql.Literal(self.role),
            "claims": sql.Literal(self.claims),
            "sub": sql.Literal(self.sub),
            "timeout": sql.Literal(f"{timeout_ms}ms"),
        }
        # One round trip: the scope, then (as that user, under RLS) the user's own row.
        parts: list[sql.Composable] = [_SCOPE.format(**values)]
        if check_user:
            parts.append(_USER_STATE.format(sub=sql.Literal(self.sub)))
        parts.extend(extra)
        return sql.SQL("; ").join(parts)


@dataclass(frozen=True, slots=True)
class _UserState:
    """What a user transaction's first round trip read: the users row, and the rate check's row."""

    row: Any
    extra: Any


class Database:
    """Connections for one container. In Lambda, invocations come one at a time, so this is one
    connection, reused. Under a local ASGI server (or FastAPI's worker threads) transactions can overlap:
    each takes an idle connection or opens one, and gives it back afterwards; at most `max_idle` stay open.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        provision_user: Callable[[Database, Caller], None] | None = None,
        on_new_user: Callable[[Database, UUID], object] | None = None,
        max_idle: int = 4,
    ):
        self._settings = settings
        self._idle: list[Connection] = []
        self._idle_lock = threading.Lock()
        self._max_idle = max_idle
        self._in_transaction = threading.local()
        self._provisioned: set[UUID] = set()
        # Dev mode only: create the user of an unknown `sub` on first use (`oneai.account.provisioning`).
        self._provision_user = provision_user
        # Called after a new user's request committed: the welcome (`oneai.account.provisioning`).
        self._on_new_user = on_new_user

    @property
    def settings(self) -> Settings:
        return self._settings

    def _connect(self) -> Connection:
        try:
            return psycopg.connect(
                self._settings.require_database_url(),
                autocommit=False,
                prepare_threshold=None,
                row_factory=dict_row,
                connect_timeout=self._settings.db_connect_timeout_seconds,
                application_name="oneai",
            )
        except psycopg.OperationalError as exc:
            raise UnavailableError("The database is unavailable") from exc

    def _take(self) -> Connection:
        with self._idle_lock:
            while self._idle:
                conn = self._idle.pop()
                if not (conn.closed or conn.broken):
                    return conn
        return self._connect()

    def _give_back(self, conn: Connection) -> None:
        if conn.closed or conn.broken:
            return
        if conn.info.transaction_status != TransactionStatus.IDLE:
            try:
                conn.rollback()
            except psycopg.Error:
                _close_quietly(conn)
                return
        with self._idle_lock:
            if len(self._idle) < self._max_idle:
                self._idle.append(conn)
                return
        _close_quietly(conn)

    def close(self) -> None:
        """Close every idle connection (connections in use close when given back after this)."""
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            _close_quietly(conn)

    def backend_pid(self) -> int | None:
        """The server process of the connection the next transaction takes (tests drop it on purpose)."""
        with self._idle_lock:
            conn = self._idle[-1] if self._idle else None
        return None if conn is None or conn.closed else conn.info.backend_pid

    @contextmanager
    def _transaction(
        self, scope: _Scope, *, check_user: bool = False, extra: tuple[sql.Composable, ...] = ()
    ) -> Iterator[tuple[Connection, Any]]:
        if getattr(self._in_transaction, "active", False):
            raise RuntimeError("transactions do not nest; pass the open connection down instead")
        self._in_transaction.active = True
        try:
            conn, user_row = self._begin(scope, check_user, extra)
            try:
                yield conn, user_row
                conn.commit()
            except psycopg.OperationalError as exc:
                _close_quietly(conn)
                raise UnavailableError("The database is unavailable") from exc
            except BaseException:
                if not (conn.broken or conn.closed):
                    conn.rollback()
                raise
            finally:
                self._give_back(conn)
        finally:
            self._in_transaction.active = False

    def _begin(self, scope: _Scope, check_user: bool, extra: tuple[sql.Composable, ...]) -> tuple[Connection, Any]:
        statement = scope.statement(self._settings.db_statement_timeout_ms, check_user=check_user, extra=extra)
        for attempt in (1, 2):
            conn = self._take()
            try:
                cursor = conn.execute(statement)
                user_row = None
                if check_user:
                    cursor.nextset()
                    user_row = _UserState(cursor.fetchone(), None)
                if extra:  # the first extra statement's row (the rate check, when there is one)
                    cursor.nextset()
                    user_row = _UserState(user_row.row if user_row else None, cursor.fetchone())
                return conn, user_row
            except psycopg.OperationalError as exc:
                # Nothing ran: the server dropped this connection. Safe to reconnect once and retry.
                _close_quietly(conn)
                if attempt == 2:
                    raise UnavailableError("The database is unavailable") from exc
            except BaseException:
                self._give_back(conn)
                raise
        raise AssertionError("unreachable")

    @contextmanager
    def user_transaction(self, principal: Caller) -> Iterator[Connection]:
        """A transaction as this user, under RLS. Unknown users are 401, suspended ones 403."""
        if self._provision_user is not None and principal.user_id not in self._provisioned:
            self._provision_user(self, principal)
            self._provisioned.add(principal.user_id)
        scope = _Scope(role="authenticated", claims=principal.claims_json(), sub=str(principal.user_id))
        check = principal.rate_check if principal.rate_check is not None and principal.rate_check.pending else None
        extra = _request_statements(check, principal.api_key_id)
        with self._transaction(scope, check_user=True, extra=extra) as (conn, user_row):
            if user_row.row is None:
                raise UnauthorizedError("Unknown user")
            if user_row.row["suspended_at"] is not None:
                raise ForbiddenError("This account is suspended")
            welcome_due = bool(user_row.row.get("welcome_due"))
            if check is None:
                yield conn
            else:
                _record_outcome(check, user_row.extra)
                with _keep_admission(conn):
                    yield conn
        if welcome_due and self._on_new_user is not None:  # committed: the user's request succeeded
            self._on_new_user(self, principal.user_id)

    def user_call(self, principal: Caller, function: str, argument: dict[str, Any]) -> dict[str, Any]:
        """One round trip as this user: `begin; <scope>; select oneai_private.<function>(<argument>);
        commit` sent as one query (psycopg would otherwise spend a round trip on `begin` and one on
        `commit`). The function takes and answers one JSON value. It does first what `user_transaction`
        does first, in the same order (`oneai_private.chat_request_checks`: the users row, then the
        request's rate check, passed in as `rate`) and raises SQLSTATE OAI02 to refuse, which stops the
        batch before its commit: nothing is written and the error is the one `user_transaction` raises.
        The chat turn's prepare and finish use it.
        """
        if self._provision_user is not None and principal.user_id not in self._provisioned:
            self._provision_user(self, principal)
            self._provisioned.add(principal.user_id)
        if getattr(self._in_transaction, "active", False):
            raise RuntimeError("transactions do not nest; pass the open connection down instead")
        scope = _Scope(role="authenticated", claims=principal.claims_json(), sub=str(principal.user_id))
        check = principal.rate_check if principal.rate_check is not None and principal.rate_check.pending else None
        if check is not None:
            argument = argument | {
                "rate": {"bucket": check.bucket, "per_minute": check.per_minute, "burst": check.burst}
            }
        parts: list[sql.Composable] = [
            sql.SQL("begin"),
            scope.statement(self._settings.db_statement_timeout_ms, check_user=False),
        ]
        if principal.api_key_id is not None:
            parts.append(_TOUCH_API_KEY.format(key_id=sql.Literal(str(principal.api_key_id))))
        parts.append(
            sql.SQL("select oneai_private.{}({}) as result").format(
                sql.Identifier(function), sql.Literal(Jsonb(argument))
            )
        )
        parts.append(sql.SQL("commit"))
        statement = sql.SQL("; ").join(parts)
        self._in_transaction.active = True
        try:
            result = self._call_once(statement)
        finally:
            self._in_transaction.active = False
        if isinstance(result, _Refused):
            _raise_refusal(result.detail, check)
        if check is not None and "rate" in result:
            _record_outcome(check, result["rate"])
        # Committed, and the user's request succeeded (a refusal of the call's own rules is answered as
        # {"error": ...}, committed only to keep the rate token): as user_transaction does.
        if result.get("welcome_due") and "error" not in result and self._on_new_user is not None:
            self._on_new_user(self, principal.user_id)
        return result

    def user_read(
        self, principal: Caller, statements: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> list[dict[str, Any]]:
        """One round trip of reads as this user, under RLS: `begin; <scope>; <checks>; <statements>;
        commit` sent as one query (the statements' parameters bound client-side), answering the rows of
        the last statement. The checks are `user_call`'s (`oneai_private.chat_request_checks`: the users row,
        the request's rate check when still pending); a refusal stops the batch before anything ran. For
        work that needs transaction-local settings before its statement (the knowledge search's index
        settings) without a round trip for each."""
        if self._provision_user is not None and principal.user_id not in self._provisioned:
            self._provision_user(self, principal)
            self._provisioned.add(principal.user_id)
        if getattr(self._in_transaction, "active", False):
            raise RuntimeError("transactions do not nest; pass the open connection down instead")
        scope = _Scope(role="authenticated", claims=principal.claims_json(), sub=str(principal.user_id))
        check = principal.rate_check if principal.rate_check is not None and principal.rate_check.pending else None
        rate = (
            None
            if check is None
            else {"bucket": check.bucket, "per_minute": check.per_minute, "burst": check.burst}
        )
        head = sql.SQL("; ").join(
            [
                sql.SQL("begin"),
                scope.statement(self._settings.db_statement_timeout_ms, check_user=False),
                sql.SQL("select oneai_private.chat_request_checks({}) as result").format(
                    sql.Literal(None if rate is None else Jsonb(rate))
                ),
            ]
        )
        self._in_transaction.active = True
        try:
            result = self._read_once(head, statements)
        finally:
            self._in_transaction.active = False
        if isinstance(result, _Refused):
            _raise_refusal(result.detail, check)
        checks, rows = result
        if check is not None and "rate" in checks:
            _record_outcome(check, checks["rate"])
        return rows

    def _read_once(
        self, head: sql.Composed, statements: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> tuple[dict[str, Any], list[dict[str, Any]]] | _Refused:
        def run(conn: Connection) -> tuple[dict[str, Any], list[dict[str, Any]]]:
            binder = psycopg.ClientCursor(conn)
            body = "; ".join(binder.mogrify(query, dict(params)) for query, params in statements)
            cursor = conn.execute(head.as_string(conn) + "; " + body + "; commit")
            # The result sets: the scope's, the checks', then one per statement.
            results: list[list[Any]] = []
            while True:
                if cursor.description is not None:
                    results.append(cursor.fetchall())
                if not cursor.nextset():
                    break
            checks: dict[str, Any] = dict(results[1][0]["result"])
            return checks, [dict(row) for row in results[-1]]

        return self._one_batch(run)

    def _call_once(self, statement: sql.Composed) -> dict[str, Any] | _Refused:
        def run(conn: Connection) -> dict[str, Any]:
            cursor = conn.execute(statement)
            row = None
            while True:
                if cursor.description is not None:
                    row = cursor.fetchone()
                if not cursor.nextset():
                    break
            if row is None:
                raise RuntimeError("the user call answered no row")
            return dict(row["result"])

        return self._one_batch(run)

    def _one_batch(self, run: Callable[[Connection], _T]) -> _T | _Refused:
        """`run` on a pooled connection in autocommit (the batch carries its own begin and commit); a
        refusal the batch raised (OAI02) is its `_Refused`."""
        for attempt in (1, 2):
            conn = self._take()
            conn.autocommit = True
            try:
                return run(conn)
            except psycopg.OperationalError as exc:
                # A pooled connection the server dropped (idle timeout, failover, pooler restart) fails on
                # its first use: reconnect once and send the batch again. A statement timeout, or a
                # connection lost on its second try, is a 503.
                broken = conn.broken or conn.closed
                _close_quietly(conn)
                if attempt == 2 or not broken or isinstance(exc, psycopg.errors.QueryCanceled):
                    raise UnavailableError("The database is unavailable") from exc
            except psycopg.Error as exc:
                if exc.sqlstate != "OAI02" or exc.diag.message_detail is None:
                    raise
                return _Refused(json.loads(exc.diag.message_detail))
            finally:
                _end_call(conn)
                self._give_back(conn)
        raise AssertionError("unreachable")

    @contextmanager
    def anon_transaction(self, rate_check: RateRequest | None = None) -> Iterator[Connection]:
        """A transaction as `anon`. With a pending `rate_check` (an anonymous write), its source's bucket
        is taken in the same round trip as the scope: refused is 429 and nothing is written."""
        check = rate_check if rate_check is not None and rate_check.pending else None
        extra = _request_statements(check, None)
        with self._transaction(_Scope(role="anon", claims=json.dumps({"role": "anon"})), extra=extra) as (
            conn,
            state,
        ):
            if check is None:
                yield conn
            else:
                _record_outcome(check, state.extra)
                with _keep_admission(conn):
                    yield conn

    @contextmanager
    def service_transaction(self) -> Iterator[Connection]:
        """Service work (webhooks, sweeps, provisioning): bypasses RLS, on purpose."""
        with self._transaction(_Scope(role="service_role", claims=json.dumps({"role": "service_role"}))) as (
            conn,
            _,
        ):
            yield conn


def _request_statements(check: RateRequest | None, api_key_id: UUID | None) -> tuple[sql.Composable, ...]:
    """What the request's first transaction runs beside its scope: the rate check (then the savepoint
    the work starts from) and the API key's use. The rate check comes first: its row is read back."""
    statements: list[sql.Composable] = []
    if check is not None:
        values = {
            "bucket": sql.Literal(check.bucket),
            "per_minute": sql.Literal(check.per_minute),
            "burst": sql.Literal(check.burst),
        }
        if check.source_digest is None:
            statements.append(_TAKE_RATE_LIMIT.format(**values))
        else:
            statements.append(_TAKE_SOURCE_RATE_LIMIT.format(source=sql.Literal(check.source_digest), **values))
    if api_key_id is not None:
        statements.append(_TOUCH_API_KEY.format(key_id=sql.Literal(str(api_key_id))))
    if check is not None:
        statements.append(sql.SQL("savepoint ") + sql.Identifier(_WORK_SAVEPOINT))
    return tuple(statements)


@dataclass(frozen=True, slots=True)
class _Refused:
    """A `user_call` refused by its checks (SQLSTATE OAI02): the JSON detail says why."""

    detail: dict[str, Any]


def _raise_refusal(detail: dict[str, Any], check: RateRequest | None) -> NoReturn:
    code = detail.get("code")
    if code == "unknown_user":
        raise UnauthorizedError("Unknown user")
    if code == "suspended":
        raise ForbiddenError("This account is suspended")
    if code == "rate_limited" and check is not None:
        _record_outcome(check, detail["rate"])  # raises RateLimitedError
    raise RuntimeError(f"unexpected refusal of a user call: {code!r}")


def _record_outcome(check: RateRequest, row: Any) -> None:
    check.outcome = RateOutcome(
        admitted=bool(row["admitted"]),
        remaining=int(row["remaining"]),
        reset_seconds=float(row["reset_seconds"]),
        retry_after_seconds=float(row["retry_after_seconds"]),
    )
    if not check.outcome.admitted:
        # Nothing was written: the transaction rolls back on this error.
        raise RateLimitedError(
            "Too many requests; try again later",
            details={"bucket": check.bucket, "retry_after": check.outcome.retry_after},
        )


@contextmanager
def _keep_admission(conn: Connection) -> Iterator[None]:
    """An admitted request that fails still counts: its work is undone back to the savepoint, the taken
    token is committed (one more round trip, on the failure path only)."""
    try:
        yield
    except BaseException:
        if not (conn.broken or conn.closed):
            try:
                conn.execute(sql.SQL("rollback to savepoint ") + sql.Identifier(_WORK_SAVEPOINT))
                conn.commit()
            except psycopg.Error:
                pass  # the transaction rolls back whole (the token with it)
        raise


def _end_call(conn: Connection) -> None:
    """Back to the pool's state: no transaction (a refused call left an aborted one), autocommit off."""
    if conn.closed or conn.broken:
        return
    try:
        if conn.info.transaction_status != TransactionStatus.IDLE:
            conn.execute("rollback")
        conn.autocommit = False
    except psycopg.Error:
        _close_quietly(conn)


def _close_quietly(conn: Connection) -> None:
    with suppress(psycopg.Error):
        conn.close()
