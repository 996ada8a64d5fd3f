"""Send the email of one domain event, at most once per (user, kind, occasion).

Upstream delivery is at least once (EventBridge -> SQS -> this function, retried), and the same occasion
may even be published twice (two first requests of a new user racing). So each email is claimed before
it is sent: `insert ... on conflict do nothing` on `sent_notifications`, committed on its own. Whoever
inserts the row sends; everyone else finds it and sends nothing.
- Sending fails (SES refuses, times out): the claim is deleted again and the error raised, so the record
  is retried and the retry can send.
- The crash-after-send window: if the process dies after SES accepted the email but before the claim is
  marked `sent` (or before it was released after a failure), the claim stays `sending` and no retry will
  ever send that occasion again. That is the chosen side: at most once, so a user is never emailed twice
  about one thing; the price is that an email can be lost in that window (seconds, rare), and a claim
  left `sending` (visible in the table, with `claimed_at`) is the trace of it.
Preferences are read when the email is sent (an unsubscribe between event and email wins); receipts and
payment failures go out whatever `billing` says. An opted-out or address-less occasion is not claimed.

A workspace invitation goes to the invited address, not to a user: the invitation is read when the email is
sent (withdrawn, accepted or expired by then: nothing is sent, as `no_recipient`), its accept link derived
from its id (oneai.workspaces.tokens), and it is claimed once per invitation under its inviter's id.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

from oneai.db import notifications as repo
from oneai.db import workspaces as workspaces_repo
from oneai.db.connection import Database
from oneai.logging import logger
from oneai.notifications.kinds import PREFERENCE_OF, is_account_kind, wants
from oneai.notifications.mail import Mailer, build_message
from oneai.notifications.occasions import Occasion, occasion_of, when
from oneai.notifications.render import RenderedEmail, render
from oneai.notifications.unsubscribe import unsubscribe_url
from oneai.observability import emit_metric
from oneai.workspaces.tokens import accept_url

Outcome = Literal["sent", "duplicate", "opted_out", "no_recipient"]


@dataclass(frozen=True, slots=True)
class Delivery:
    outcome: Outcome
    kind: str
    occasion: str
    message_id: str | None = None

    def log_fields(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "kind": self.kind,
            "occasion": self.occasion,
            "message_id": self.message_id,
        }


class Notifier:
    """Sends the emails of domain events through `mailer` (SES, or the outbox under `make dev`)."""

    def __init__(self, db: Database, mailer: Mailer, *, sender: str) -> None:
        self._db = db
        self._mailer = mailer
        self._sender = sender

    def deliver_event(self, event: dict[str, Any]) -> Delivery:
        """The email of one EventBridge event. Raises UnknownEventError (not ours / malformed: retrying
        cannot help) or the sending error (after releasing the claim: the retry can send)."""
        return self.deliver(occasion_of(event))

    def deliver(self, occasion: Occasion) -> Delivery:
        if not is_account_kind(occasion.kind):
            return self._deliver_invitation(occasion)
        settings = self._db.settings
        with self._db.service_transaction() as conn:
            recipient = repo.recipient(conn, occasion.user_id)
        if recipient is None or not recipient.email:
            return self._done(Delivery("no_recipient", occasion.kind, occasion.key), occasion)
        if not wants(occasion.kind, recipient.preferences):
            return self._done(Delivery("opted_out", occasion.kind, occasion.key), occasion)

        link = unsubscribe_url(settings, occasion.user_id, PREFERENCE_OF[occasion.kind])
        name = recipient.name
        return self._send_once(
            occasion,
            recipient.email,
            lambda: render(occasion, name=name, unsubscribe_url=link),
            unsubscribe=link,
        )

    def _deliver_invitation(self, occasion: Occasion) -> Delivery:
        with self._db.service_transaction() as conn:
            invitation = workspaces_repo.invitation_for_mail(conn, UUID(occasion.key))
        if invitation is None:  # withdrawn, accepted, expired, or its workspace deleted
            return self._done(Delivery("no_recipient", occasion.kind, occasion.key), occasion)
        values = {
            "inviter": invitation.inviter or "A OneAI user",
            "workspace": invitation.workspace_name,
            "role": invitation.role,
            "email": invitation.email,
            "expires_at": when(invitation.expires_at),
            "accept_url": accept_url(self._db.settings, invitation.id),
        }
        filled = Occasion(occasion.kind, occasion.user_id, occasion.key, values)
        return self._send_once(
            occasion, invitation.email, lambda: render(filled, name=None, unsubscribe_url=None), unsubscribe=None
        )

    def _send_once(
        self, occasion: Occasion, to: str, rendered: Callable[[], RenderedEmail], *, unsubscribe: str | None
    ) -> Delivery:
        """Claim the occasion, send, mark it sent; a failed send releases the claim (the retry can send)."""
        with self._db.service_transaction() as conn:
            claimed = repo.claim(conn, occasion.user_id, occasion.kind, occasion.key)
        if not claimed:  # before rendering: a redelivery costs two short transactions and nothing else
            return self._done(Delivery("duplicate", occasion.kind, occasion.key), occasion)
        try:
            message = build_message(rendered(), sender=self._sender, to=to, unsubscribe_url=unsubscribe)
            message_id = self._mailer.send(message)
        except BaseException:
            with self._db.service_transaction() as conn:
                repo.release(conn, occasion.user_id, occasion.kind, occasion.key)
            raise
        try:
            with self._db.service_transaction() as conn:
                repo.mark_sent(conn, occasion.user_id, occasion.kind, occasion.key, message_id)
        except Exception as exc:  # sent: the claim stays `sending`, which blocks a resend all the same
            logger.warning(
                "email sent, claim not marked sent",
                extra={"kind": occasion.kind, "occasion": occasion.key, "error_type": type(exc).__name__},
            )
        return self._done(Delivery("sent", occasion.kind, occasion.key, message_id), occasion)

    def _done(self, delivery: Delivery, occasion: Occasion) -> Delivery:
        logger.info("notification", extra={**delivery.log_fields(), "user_id": str(occasion.user_id)})
        emit_metric("Notifications", 1, kind=delivery.kind, outcome=delivery.outcome)
        return delivery
