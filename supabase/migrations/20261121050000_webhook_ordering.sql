-- Razorpay webhooks arrive at least once and in any order. A subscription keeps the key of the last event
-- applied to its status, (last_event_at, last_event_rank): an event changes the status only when its key
-- is newer. The rank orders events of the same second in their life-cycle order (oneai.billing.webhooks):
-- authenticated 0 < activated 1 < resumed 2 < charged 3 < updated 4 < pending 5 < paused 6 < halted 7
-- < cancelled = completed 8. paid_until (initial schema) only ever moves forward.

alter table public.subscriptions
  add column last_event_rank smallint,
  -- Razorpay's customer of the subscription (`cust_...`): finds the subscription of a failed payment.
  add column provider_customer_id text,
  -- When this subscription stopped granting its tier after it was cancelled or completed (by the webhook
  -- at once, or by the period-end sweep for a cancellation at the end of the paid period). Null while it
  -- still grants it, so the sweep visits each ended period once.
  add column access_ended_at timestamptz;

create index idx_subscriptions_customer on public.subscriptions (provider_customer_id)
  where provider_customer_id is not null;

-- The period-end sweep (oneai.billing.period_end): cancelled at the end of the paid period, not yet ended.
create index idx_subscriptions_period_end_cancellations on public.subscriptions (paid_until)
  where status = 'cancelled' and cancel_at_period_end and access_ended_at is null;

-- Support: which events were seen for a subscription.
create index idx_processed_webhook_events_subscription on public.processed_webhook_events (provider_subscription_id)
  where provider_subscription_id is not null;
