"""Charges Razorpay reported (`subscription.charged`), kept for revenue figures. Service role only."""

from __future__ import annotations

from datetime import datetime

from oneai.db.connection import Connection

# The subscription's tier at the time of the charge; a repeat of the payment is ignored.
RECORD_CHARGE = """
insert into public.subscription_charges (subscription_id, tier, provider_payment_id, amount, currency, charged_at)
select s.id, s.tier, %(payment_id)s, %(amount)s, %(currency)s, %(charged_at)s
from public.subscriptions s
where s.payment_provider = 'razorpay' and s.provider_subscription_id = %(provider_subscription_id)s
on conflict (provider_payment_id) do nothing"""


def record_charge(
    conn: Connection,
    *,
    provider_subscription_id: str,
    payment_id: str,
    amount: int,
    currency: str,
    charged_at: datetime,
) -> bool:
    """True when the charge was recorded now (False: a repeat, or not one of our subscriptions)."""
    cursor = conn.execute(
        RECORD_CHARGE,
        {
            "provider_subscription_id": provider_subscription_id,
            "payment_id": payment_id,
            "amount": amount,
            "currency": currency,
            "charged_at": charged_at,
        },
    )
    return cursor.rowcount == 1
