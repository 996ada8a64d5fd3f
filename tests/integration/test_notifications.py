"""Notifications through the AWS path, with moto: the domain event goes to an EventBridge bus, the
template's own rule puts it in an SQS queue, the notifications handler gets SQS batches and sends with
SES v2 (moto keeps what it was sent). Real PostgreSQL behind it all."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email import message_from_string, policy
from email.message import EmailMessage
from typing import Any, cast
from uuid import UUID, uuid4

import boto3
import psycopg
import pytest
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends
from pydantic import SecretStr

from local.template_routes import load_template
from oneai.billing.webhooks import handle_webhook, sign
from oneai.config import override_settings
from oneai.database import get_database
from oneai.db.connection import Database
from oneai.events import DomainEvent, EventPublisher
from oneai.notifications.mail import SesMailer
from oneai.notifications.service import Notifier
from oneai.notifications.summary import Month, emit_usage_summaries
from oneai.notifications.unsubscribe import InvalidUnsubscribeTokenError, unsubscribe, verify_token
from oneai.quota import service as quota
from oneai.quota.warnings import announce_warnings
from tests.lambda_support import FakeLambdaContext

REGION = "ap-south-1"
BUS = "oneai-test-notifications-bus"
SENDER_DOMAIN = "oneai.test"
SENDER = f"OneAI <no-reply@{SENDER_DOMAIN}>"
UNSUBSCRIBE_SECRET = "unsubscribe-secret-of-the-notification-tests"
API_URL = "https://api.oneai.test/default"
WEBHOOK_SECRET = "whsec-notifications-test-0123456789"


def set_quota(database_url: str, user_id: UUID, *, used: int, limit: int) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "update public.usage_quotas set used_count = %s, quota_limit = %s, warning_level = 0"
            " where user_id = %s and quota_key = 'small_messages'",
            (used, limit, user_id),
        )


def claims(database_url: str, user_id: UUID) -> list[tuple[str, str, str]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "select kind, occasion, status from public.sent_notifications where user_id = %s order by claimed_at",
            (user_id,),
        ).fetchall()
    return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]


@dataclass
class Aws:
    sqs: Any
    queue_url: str

    def receive(self) -> list[dict[str, Any]]:
        """What the rule put in the queue so far, as the SQS records Lambda would hand the function."""
        records: list[dict[str, Any]] = []
        while batch := self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages"):
            for message in batch:
                records.append(
                    {
                        "messageId": message["MessageId"],
                        "receiptHandle": message["ReceiptHandle"],
                        "body": message["Body"],
                        "attributes": {"ApproximateReceiveCount": "1"},
                        "messageAttributes": {},
                        "md5OfBody": message["MD5OfBody"],
                        "eventSource": "aws:sqs",
                        "eventSourceARN": f"arn:aws:sqs:{REGION}:{DEFAULT_ACCOUNT_ID}:notifications",
                        "awsRegion": REGION,
                    }
                )
        return records

    def sent(self, to: str | None = None) -> list[EmailMessage]:
        """The emails SES accepted (moto keeps the raw message), optionally only those to `to`."""
        backend = ses_backends[DEFAULT_ACCOUNT_ID][REGION]
        emails = [
            cast(EmailMessage, message_from_string(m.raw_data, policy=policy.default))
            for m in backend.sent_messages
        ]
        return [e for e in emails if to is None or to in str(e["To"])]


def text_of(email: EmailMessage) -> str:
    part = email.get_body(preferencelist=("plain",))
    assert part is not None
    return str(cast(EmailMessage, part).get_content())


def html_of(email: EmailMessage) -> str:
    part = email.get_body(preferencelist=("html",))
    assert part is not None
    return str(cast(EmailMessage, part).get_content())


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, settings_with_db: Any) -> Iterator[Aws]:
    """A moto bus with the notification rule of template.yaml (its own event pattern) into a queue, a
    verified SES domain, and the settings the notifications function runs with."""
    for name, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    rule = load_template()["Resources"]["NotificationEventsRule"]["Properties"]
    with mock_aws():
        events, sqs = boto3.client("events"), boto3.client("sqs")
        events.create_event_bus(Name=BUS)
        queue_url = sqs.create_queue(QueueName="notifications")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name="notifications", EventBusName=BUS, EventPattern=json.dumps(rule["EventPattern"]))
        events.put_targets(Rule="notifications", EventBusName=BUS, Targets=[{"Id": "queue", "Arn": arn}])
        boto3.client("sesv2").create_email_identity(EmailIdentity=SENDER_DOMAIN)
        with override_settings(
            event_bus_name=BUS,
            mail_from=SENDER,
            mail_outbox=None,
            unsubscribe_secret=SecretStr(UNSUBSCRIBE_SECRET),
            public_api_url=API_URL,
            razorpay_webhook_secret=SecretStr(WEBHOOK_SECRET),
            grace_period_days=3.0,
        ):
            try:
                yield Aws(sqs, queue_url)
            finally:
                get_database().close()


def invoke(records: list[dict[str, Any]]) -> dict[str, Any]:
    from notifications.handler import lambda_handler

    answer: dict[str, Any] = lambda_handler({"Records": records}, FakeLambdaContext("NotificationsFunction"))
    return answer


def cross_80_percent(db: Database, user: Any, database_url: str) -> None:
    set_quota(database_url, user.id, used=7, limit=10)
    with db.user_transaction(user.principal) as conn:
        reservation = quota.reserve(conn, "small_messages")
    assert reservation.warnings_crossed == (80,)
    assert announce_warnings(EventPublisher(BUS), user.id, reservation) == 1


def test_a_quota_crossing_80_percent_sends_one_email_even_when_delivered_three_times(
    aws: Aws, db: Database, make_user: Any, database_url: str
) -> None:
    user = make_user()
    # GIVEN a reserve that takes the quota to 8 of 10, announced on the bus
    cross_80_percent(db, user, database_url)
    [record] = aws.receive()
    # WHEN SQS delivers its record three times (at least once upstream)
    answers = [invoke([record]) for _ in range(3)]
    # THEN every delivery succeeds, and exactly one email went out
    assert answers == [{"batchItemFailures": []}] * 3
    [email] = aws.sent(to=user.principal.email)
    assert email["Subject"] == "You have used 80 % of your messages to small models"
    assert "8 of your 10 messages to small models" in text_of(email)
    assert "It resets at" in text_of(email) and "UTC" in text_of(email)
    assert "<strong>8 of your 10</strong>" in html_of(email)
    # with a one-click unsubscribe (RFC 8058) that names this user and quota warnings
    link = str(email["List-Unsubscribe"]).strip("<>")
    assert link.startswith(f"{API_URL}/notifications/unsubscribe?token=")
    assert email["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    token = link.partition("token=")[2]
    assert verify_token(UNSUBSCRIBE_SECRET.encode(), token) == (user.id, "quota_warnings")
    assert link in text_of(email)
    [(kind, occasion, status)] = claims(database_url, user.id)
    assert (kind, status) == ("quota_warning", "sent") and occasion.startswith("small_messages:")


def test_concurrent_deliveries_of_one_occasion_send_one_email(
    aws: Aws, db: Database, make_user: Any, database_url: str, settings_with_db: Any
) -> None:
    user = make_user()
    cross_80_percent(db, user, database_url)
    [record] = aws.receive()
    event = json.loads(record["body"])
    outcomes: list[str] = []
    barrier = threading.Barrier(5)

    def deliver() -> None:
        database = Database(get_database().settings)
        try:
            notifier = Notifier(database, SesMailer(database.settings), sender=SENDER)
            barrier.wait(timeout=10)
            outcomes.append(notifier.deliver_event(event).outcome)
        finally:
            database.close()

    threads = [threading.Thread(target=deliver) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["duplicate"] * 4 + ["sent"]
    assert len(aws.sent(to=user.principal.email)) == 1


def test_a_failed_record_in_a_batch_is_retried_alone(
    aws: Aws, db: Database, make_user: Any, database_url: str
) -> None:
    first, second = make_user(), make_user()
    cross_80_percent(db, first, database_url)
    cross_80_percent(db, second, database_url)
    good = aws.receive()
    assert len(good) == 2
    # a record whose event is malformed (no `used`): nothing can send it
    broken_event = json.loads(good[0]["body"])
    del broken_event["detail"]["used"]
    broken = {**good[0], "messageId": "9d2f7c1e-0000-4000-8000-00000000bad1", "body": json.dumps(broken_event)}
    # WHEN one batch holds the two good records and the broken one
    answer = invoke([good[0], broken, good[1]])
    # THEN only the broken record is reported, so only it comes back; both emails went out
    assert answer == {"batchItemFailures": [{"itemIdentifier": broken["messageId"]}]}
    assert len(aws.sent(to=first.principal.email)) == 1 and len(aws.sent(to=second.principal.email)) == 1
    # WHEN the failed record comes back alone THEN it fails alone again, and nothing is sent twice
    assert invoke([broken]) == {"batchItemFailures": [{"itemIdentifier": broken["messageId"]}]}
    assert len(aws.sent()) == 2


def test_a_rejected_send_releases_the_claim_so_the_retry_sends(
    aws: Aws, db: Database, make_user: Any, database_url: str
) -> None:
    user = make_user()
    cross_80_percent(db, user, database_url)
    [record] = aws.receive()
    ses = boto3.client("sesv2")
    # GIVEN the sender's identity is not verified (SES refuses: MessageRejected)
    ses.delete_email_identity(EmailIdentity=SENDER_DOMAIN)
    assert invoke([record]) == {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}
    assert aws.sent() == [] and claims(database_url, user.id) == []
    # WHEN it is verified and the record retried THEN the email goes out, once
    ses.create_email_identity(EmailIdentity=SENDER_DOMAIN)
    assert invoke([record]) == {"batchItemFailures": []}
    assert invoke([record]) == {"batchItemFailures": []}
    assert len(aws.sent(to=user.principal.email)) == 1


def razorpay_payment_failed(user_id: UUID, created_at: int) -> bytes:
    body = {
        "entity": "event",
        "account_id": "acc_NotificationsTest",
        "event": "payment.failed",
        "contains": ["payment"],
        "payload": {
            "payment": {
                "entity": {
                    "id": f"pay_Failed{created_at}",
                    "entity": "payment",
                    "amount": 49900,
                    "currency": "INR",
                    "status": "failed",
                    "method": "card",
                    "captured": False,
                    "notes": {"user_id": str(user_id)},
                    "error_code": "BAD_REQUEST_ERROR",
                    "error_description": "Payment failed",
                    "error_reason": "payment_failed",
                    "created_at": created_at,
                }
            }
        },
        "created_at": created_at,
    }
    return json.dumps(body).encode()


def test_a_payment_failure_email_names_the_end_of_the_grace_period(
    aws: Aws, db: Database, make_user: Any, database_url: str
) -> None:
    user = make_user()
    failed_at = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    body = razorpay_payment_failed(user.id, int(failed_at.timestamp()))
    # GIVEN Razorpay's payment.failed for one of our users, applied by the webhook
    result = handle_webhook(
        get_database(),
        body=body,
        signature=sign(body, WEBHOOK_SECRET),
        event_id="evt_failed_1",
        publisher=EventPublisher(BUS),
    )
    assert result.published
    [record] = aws.receive()
    assert json.loads(record["body"])["detail"]["grace_until"] == (failed_at + timedelta(days=3)).isoformat()
    # WHEN the notifications function gets it
    assert invoke([record]) == {"batchItemFailures": []}
    # THEN the email says until when the plan stays, and how much failed
    [email] = aws.sent(to=user.principal.email)
    assert email["Subject"] == "Your OneAI payment failed"
    assert "until 2026-11-23 09:30 UTC" in text_of(email)
    assert "INR 499.00" in text_of(email)
    assert "2026-11-23 09:30 UTC" in html_of(email)


def test_receipts_ignore_billing_off_but_warnings_obey_their_switch(
    aws: Aws, db: Database, make_user: Any, database_url: str
) -> None:
    user = make_user()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            'update public.users set preferences = \'{"notifications": {"billing": false,'
            ' "quota_warnings": false}}\' where id = %s',
            (user.id,),
        )
    receipt = DomainEvent(
        "oneai.billing",
        "PaymentReceived",
        {
            "user_id": str(user.id),
            "payment_id": "pay_Receipt1",
            "amount": 149900,
            "currency": "INR",
            "tier": "pro",
            "period_start": "2026-11-01T00:00:00+00:00",
            "period_end": "2026-12-01T00:00:00+00:00",
        },
    )
    assert EventPublisher(BUS).publish_all([receipt]) == 1
    cross_80_percent(db, user, database_url)
    assert invoke(aws.receive()) == {"batchItemFailures": []}
    [email] = aws.sent(to=user.principal.email)
    assert email["Subject"] == "Payment received: INR 1,499.00"
    assert "for the pro plan, 2026-11-01 to 2026-12-01" in text_of(email)
    assert [kind for kind, _, _ in claims(database_url, user.id)] == ["payment_received"]


def add_usage(database_url: str, user_id: UUID, *, at: datetime, cost: str, tokens: tuple[int, int]) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "insert into public.usage_records (user_id, quota_key, requested_model, model_id, prompt_tokens,"
            " completion_tokens, cost, created_at) values (%s, 'small_messages', 'm', 'm', %s, %s, %s, %s)",
            (user_id, tokens[0], tokens[1], Decimal(cost), at),
        )


def test_the_monthly_sweep_emits_one_summary_per_user_with_usage_last_month(
    aws: Aws, db: Database, make_user: Any, database_url: str
) -> None:
    month = Month.parse("2026-10")
    users = [make_user() for _ in range(5)]
    for index, user in enumerate(users[:4]):
        for day in range(index + 1):  # user k has k + 1 messages in October
            add_usage(
                database_url,
                user.id,
                at=month.start + timedelta(days=day, hours=5),
                cost="0.0015",
                tokens=(10, 20),
            )
    add_usage(database_url, users[4].id, at=month.end + timedelta(hours=1), cost="1", tokens=(1, 1))  # November
    # WHEN the sweep runs in batches of 3 users
    report = emit_usage_summaries(db, EventPublisher(BUS), month, batch_size=3)
    # THEN every user with October usage got one event (other tests' users too: filter ours)
    records = aws.receive()
    details = {json.loads(r["body"])["detail"]["user_id"]: json.loads(r["body"])["detail"] for r in records}
    ours = {str(u.id) for u in users}
    assert set(details) & ours == {str(u.id) for u in users[:4]}
    assert report.users == report.published == len(records) and report.batches >= 2 and not report.stopped_early
    third = details[str(users[2].id)]
    assert (third["month"], third["messages"], third["prompt_tokens"], third["completion_tokens"]) == (
        "2026-10",
        3,
        30,
        60,
    )
    assert Decimal(third["cost"]) == Decimal("0.0045")
    # and each becomes one email, also when the sweep runs again
    assert invoke(records) == {"batchItemFailures": []}
    emit_usage_summaries(db, EventPublisher(BUS), month)
    assert invoke(aws.receive()) == {"batchItemFailures": []}
    [email] = aws.sent(to=users[2].principal.email)
    assert email["Subject"] == "Your OneAI usage in October 2026"
    assert "you sent 3 messages, which used 90 tokens (USD 0.0045" in text_of(email)


def test_the_sweep_stops_when_its_time_runs_out_and_says_where(
    aws: Aws, db: Database, make_user: Any, database_url: str
) -> None:
    month = Month.parse("2026-09")
    users = [make_user() for _ in range(3)]
    for user in users:
        add_usage(database_url, user.id, at=month.start + timedelta(days=3), cost="0.01", tokens=(1, 2))
    clock = iter([100.0, 100.0, 0.5])  # time for two batches, then only the safety margin is left
    report = emit_usage_summaries(
        db, EventPublisher(BUS), month, batch_size=1, time_left=lambda: next(clock), safety_margin=1.0
    )
    assert report.stopped_early and report.batches == 2 and report.users == 2
    assert report.last_user_id is not None
    # going on from where it stopped reaches the rest
    rest = emit_usage_summaries(db, EventPublisher(BUS), month, after=UUID(report.last_user_id))
    assert report.users + rest.users >= 3
    emailed = {json.loads(r["body"])["detail"]["user_id"] for r in aws.receive()}
    assert {str(u.id) for u in users} <= emailed


def test_the_schedule_event_runs_the_sweep_for_last_month(aws: Aws, make_user: Any, database_url: str) -> None:
    from notifications.handler import usage_summary_handler

    user = make_user()
    last_month = Month.before(datetime.now(UTC))
    add_usage(database_url, user.id, at=last_month.start + timedelta(hours=1), cost="0.2", tokens=(5, 5))
    event = json.loads((load_template_events() / "usage-summary-sweep.json").read_text())
    del event["detail"]["month"]  # as the schedule sends it: last month
    report = usage_summary_handler(event, FakeLambdaContext("UsageSummaryFunction"))
    assert report["month"] == last_month.label and report["published"] >= 1
    assert str(user.id) in {json.loads(r["body"])["detail"]["user_id"] for r in aws.receive()}


def load_template_events() -> Any:
    from local.events import EVENTS_DIR

    return EVENTS_DIR / "notifications"


def test_a_new_users_first_request_announces_them_once(aws: Aws, make_user: Any, database_url: str) -> None:
    user = make_user()
    database = get_database()
    # WHEN the new user makes two requests
    for _ in range(2):
        with database.user_transaction(user.principal) as conn:
            conn.execute("select 1")
    # THEN one UserCreated went out, and its email is a welcome
    records = [r for r in aws.receive() if json.loads(r["body"])["detail"]["user_id"] == str(user.id)]
    assert [json.loads(r["body"])["detail-type"] for r in records] == ["UserCreated"]
    assert invoke(records) == {"batchItemFailures": []}
    [email] = aws.sent(to=user.principal.email)
    assert email["Subject"] == "Welcome to OneAI"
    assert "Stop product emails" in text_of(email)


def test_a_forged_or_altered_unsubscribe_link_changes_nothing(aws: Aws, make_user: Any, database_url: str) -> None:
    user, other = make_user(), make_user()
    from oneai.notifications.unsubscribe import sign_token

    token = sign_token(UNSUBSCRIBE_SECRET.encode(), user.id, "quota_warnings")
    forged = [
        token.replace("quota_warnings", "billing"),  # another switch
        other.id.hex + token[32:],  # another user
        sign_token(b"not-the-secret", user.id, "quota_warnings"),
        "",
        "x" * 500,
    ]
    database = get_database()
    for bad in forged:
        with pytest.raises(InvalidUnsubscribeTokenError):
            unsubscribe(database, bad)
    assert unsubscribe(database, token) == "quota_warnings"
    assert unsubscribe(database, token) == "quota_warnings"  # a second click is harmless
    with psycopg.connect(database_url) as conn:
        rows = dict(
            conn.execute(
                "select id, preferences from public.users where id in (%s, %s)", (user.id, other.id)
            ).fetchall()
        )
    assert rows[user.id] == {"notifications": {"quota_warnings": False}} and rows[other.id] == {}


def subscription_body(event: str, user_id: UUID, subscription_id: str, at: int, **payment: Any) -> bytes:
    status = {
        "subscription.charged": "active",
        "subscription.cancelled": "cancelled",
        "subscription.pending": "pending",
    }
    payload: dict[str, Any] = {
        "subscription": {
            "entity": {
                "id": subscription_id,
                "entity": "subscription",
                "plan_id": "plan_NotifyPro",
                "customer_id": f"cust_{subscription_id[4:]}",
                "status": status[event],
                "current_start": at,
                "current_end": at + 30 * 86_400,
                "notes": {"user_id": str(user_id), "tier": "pro"},
                "created_at": at - 60,
            }
        }
    }
    if payment:
        payload["payment"] = {"entity": {"entity": "payment", "status": "captured", "captured": True, **payment}}
    document = {"entity": "event", "event": event, "contains": list(payload), "payload": payload, "created_at": at}
    return json.dumps(document).encode()


def webhook(body: bytes) -> Any:
    return handle_webhook(
        get_database(),
        body=body,
        signature=sign(body, WEBHOOK_SECRET),
        event_id=f"evt_{uuid4().hex[:16]}",
        publisher=EventPublisher(BUS),
    )


def test_a_charge_sends_a_receipt_and_an_immediate_cancellation_an_ended_email(
    aws: Aws, make_user: Any, database_url: str
) -> None:
    user = make_user()
    subscription_id = f"sub_Notify{uuid4().hex[:8]}"
    now = int(datetime.now(UTC).timestamp())
    with override_settings(razorpay_plan_ids="pro=plan_NotifyPro"):
        charged = webhook(
            subscription_body(
                "subscription.charged",
                user.id,
                subscription_id,
                now - 120,
                id="pay_NotifyCharge",
                amount=99900,
                currency="INR",
            )
        )
        assert (charged.outcome, charged.tier) == ("applied", "pro")
        cancelled = webhook(subscription_body("subscription.cancelled", user.id, subscription_id, now - 60))
        assert cancelled.tier == "free"
    records = aws.receive()
    assert sorted(json.loads(r["body"])["detail-type"] for r in records) == [
        "PaymentReceived",
        "SubscriptionEnded",
    ]
    assert invoke(records) == {"batchItemFailures": []}
    subjects = sorted(str(e["Subject"]) for e in aws.sent(to=user.principal.email))
    assert subjects == ["Payment received: INR 999.00", "Your OneAI pro plan has ended"]


def test_a_grace_period_that_runs_out_sends_an_ended_email(aws: Aws, make_user: Any, database_url: str) -> None:
    from oneai.billing.grace import end_expired_grace_periods

    user = make_user()
    subscription_id = f"sub_Grace{uuid4().hex[:8]}"
    now = int(datetime.now(UTC).timestamp())
    with override_settings(razorpay_plan_ids="pro=plan_NotifyPro"):
        webhook(
            subscription_body(
                "subscription.charged",
                user.id,
                subscription_id,
                now - 7200,
                id="pay_G1",
                amount=100,
                currency="INR",
            )
        )
        webhook(subscription_body("subscription.pending", user.id, subscription_id, now - 3600))
    aws.receive()  # the receipt; pending is not an end (the tier is kept through the grace period)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "update public.subscriptions set grace_until = now() - interval '1 minute' where provider_subscription_id = %s",
            (subscription_id,),
        )
    assert end_expired_grace_periods(get_database()) >= 1
    ended = [r for r in aws.receive() if json.loads(r["body"])["detail"]["user_id"] == str(user.id)]
    assert [json.loads(r["body"])["detail"]["status"] for r in ended] == ["halted"]
    assert invoke(ended) == {"batchItemFailures": []}
    [email] = [e for e in aws.sent(to=user.principal.email) if "ended" in str(e["Subject"])]
    assert "Your conversations are kept" in text_of(email)
