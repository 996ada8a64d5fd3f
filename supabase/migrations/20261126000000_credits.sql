-- Workspace credits (issue 26, items 4-5; API.md "Credits"): a balance in INR that can never go below zero
-- however many replies run at once, its ledger, Razorpay orders that grow it exactly once, and the
-- reservation a chatbot's reply takes before the model is called.
--
-- Money: numeric(16, 6) INR. A reply of a small model costs a fraction of a paisa, so the ledger keeps six
-- decimals (a charge is rounded up to the millionth of a rupee); the API writes at least cents
-- (oneai.money.balance_decimal). Purchases are whole paise.
--
-- The account row (`workspace_credits`) holds `balance` and `reserved` (what running replies hold).
-- A reply's reservation is ONE conditional UPDATE: `reserved = reserved + amount where balance - reserved >=
-- amount`. Under READ COMMITTED concurrent UPDATEs of the row queue on its lock and each re-checks the
-- WHERE on the newest version, so the sum of what is held never exceeds the balance (the personal quota's
-- reserve works the same way: 20261121010000_quota_functions.sql). Settling releases the hold and takes
-- the real cost, at most what the balance has beyond the other holds, so `reserved <= balance` and
-- `balance >= 0` hold always (both are CHECKs as well).
--
-- Who may call: the reservation functions are security definer and act for a member of the workspace
-- (`auth.uid()` with at least role viewer: a viewer may chat with the workspace's chatbots) or for the
-- service role (a widget visitor's reply runs as the service). Purchases are credited by the webhooks
-- function (service role) only; grants by the admin function (service role) only.
--
-- RLS (roles of API.md "Workspaces and teams"): the balance is read by every member (it is in the
-- workspace's `stats` for every member already); the ledger (`credit_transactions`) by admins and owners;
-- orders are made and read by owners (billing is the owner's). Nobody writes balances or the ledger
-- directly: only the functions below.

-- ---------------------------------------------------------------------------------------------
-- Tables
-- ---------------------------------------------------------------------------------------------
create table public.workspace_credits (
  workspace_id uuid primary key references public.workspaces (id) on delete cascade,
  balance numeric(16, 6) not null default 0 check (balance >= 0),
  -- What running replies hold (their reservations' sum).
  reserved numeric(16, 6) not null default 0 check (reserved >= 0),
  -- Under it, the owner gets one email per downward crossing.
  low_balance_threshold numeric(16, 2) not null default 100.00 check (low_balance_threshold >= 0),
  -- Set by the settle that crossed the threshold downward; cleared when the balance is back at or over it.
  low_balance_warned boolean not null default false,
  -- How many downward crossings so far: the key that makes each email one of a kind.
  low_balance_crossings integer not null default 0,
  updated_at timestamptz not null default now(),
  constraint workspace_credits_reserved_covered check (reserved <= balance)
);

create table public.credit_reservations (
  id uuid primary key default gen_random_uuid(),
  workspace_id uuid not null references public.workspaces (id) on delete cascade,
  amount numeric(16, 6) not null check (amount > 0),
  status text not null default 'held' check (status in ('held', 'settled', 'refunded')),
  created_at timestamptz not null default now(),
  finished_at timestamptz,
  check ((status = 'held') = (finished_at is null))
);

create index idx_credit_reservations_held on public.credit_reservations (created_at) where status = 'held';
create index idx_credit_reservations_workspace on public.credit_reservations (workspace_id);

-- A workspace's credit orders at Razorpay (a purchase before and after its payment).
create table public.credit_orders (
  razorpay_order_id text primary key check (char_length(razorpay_order_id) between 1 and 100),
  workspace_id uuid not null references public.workspaces (id) on delete cascade,
  amount numeric(16, 2) not null check (amount > 0),
  amount_paise bigint not null check (amount_paise > 0),
  currency text not null default 'INR' check (currency = 'INR'),
  created_by uuid references public.users (id) on delete set null,
  created_at timestamptz not null default now(),
  paid_at timestamptz,
  razorpay_payment_id text,
  check ((paid_at is null) = (razorpay_payment_id is null))
);

create index idx_credit_orders_workspace on public.credit_orders (workspace_id, created_at);

create table public.credit_transactions (
  id uuid primary key default gen_random_uuid(),
  workspace_id uuid not null references public.workspaces (id) on delete cascade,
  type text not null check (type in ('purchase', 'usage', 'refund', 'grant', 'adjustment')),
  -- Signed: what the balance gained (> 0) or lost (< 0).
  amount numeric(16, 6) not null,
  balance_after numeric(16, 6) not null check (balance_after >= 0),
  -- purchase
  razorpay_order_id text,
  razorpay_payment_id text,
  -- usage
  reservation_id uuid references public.credit_reservations (id) on delete set null,
  usage_record_id uuid references public.usage_records (id) on delete set null,
  cost_usd numeric(16, 8) check (cost_usd is null or cost_usd >= 0),
  usd_inr_rate numeric(12, 4) check (usd_inr_rate is null or usd_inr_rate > 0),
  markup numeric(8, 4) check (markup is null or markup > 0),
  -- What the real cost exceeded the balance by (the reply was served; the balance stopped at zero).
  shortfall numeric(16, 6) check (shortfall is null or shortfall >= 0),
  -- grant / adjustment: the admin who made it (null: the product itself, e.g. the welcome grant)
  actor_id uuid references public.users (id) on delete set null,
  reason text check (reason is null or char_length(reason) between 1 and 500),
  -- clock_timestamp: the rows of one transaction keep their order (the last one has the balance).
  created_at timestamptz not null default clock_timestamp(),
  constraint credit_transactions_purchase check (
    type <> 'purchase' or (amount > 0 and razorpay_order_id is not null and razorpay_payment_id is not null)),
  constraint credit_transactions_usage check (type <> 'usage' or amount <= 0),
  constraint credit_transactions_grant check (type <> 'grant' or (amount > 0 and reason is not null))
);

-- A payment credits once, an order once; a reservation is settled once; one welcome grant per workspace.
create unique index credit_transactions_one_per_payment on public.credit_transactions (razorpay_payment_id)
  where type = 'purchase';
create unique index credit_transactions_one_per_order on public.credit_transactions (razorpay_order_id)
  where type = 'purchase';
create unique index credit_transactions_one_per_reservation on public.credit_transactions (reservation_id)
  where type = 'usage';
create unique index credit_transactions_one_welcome on public.credit_transactions (workspace_id)
  where type = 'grant' and actor_id is null and reason = 'welcome';
-- The list, newest first, paged by (created_at, id).
create index idx_credit_transactions_workspace on public.credit_transactions (workspace_id, created_at desc, id desc);
create index idx_credit_transactions_usage_record on public.credit_transactions (usage_record_id)
  where usage_record_id is not null;

-- ---------------------------------------------------------------------------------------------
-- Every workspace has its account, from the transaction that creates it (balance 0.00)
-- ---------------------------------------------------------------------------------------------
create function oneai_private.open_credit_account() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into public.workspace_credits (workspace_id) values (new.id) on conflict (workspace_id) do nothing;
  return null;
end
$$;

create trigger workspaces_open_credit_account after insert on public.workspaces
  for each row execute function oneai_private.open_credit_account();

revoke execute on function oneai_private.open_credit_account() from public;

insert into public.workspace_credits (workspace_id) select w.id from public.workspaces w
on conflict (workspace_id) do nothing;

-- ---------------------------------------------------------------------------------------------
-- Row Level Security
-- ---------------------------------------------------------------------------------------------
alter table public.workspace_credits enable row level security;
alter table public.credit_reservations enable row level security;
alter table public.credit_orders enable row level security;
alter table public.credit_transactions enable row level security;
revoke all on public.workspace_credits, public.credit_reservations, public.credit_orders,
  public.credit_transactions from anon, authenticated;

grant select on public.workspace_credits to authenticated;
create policy workspace_credits_members_read on public.workspace_credits for select to authenticated
  using (workspace_id in (select oneai_private.workspaces_with_role('viewer')));

grant select on public.credit_transactions to authenticated;
create policy credit_transactions_admins_read on public.credit_transactions for select to authenticated
  using (workspace_id in (select oneai_private.workspaces_with_role('admin')));

grant select on public.credit_orders to authenticated;
grant insert (razorpay_order_id, workspace_id, amount, amount_paise, currency, created_by)
  on public.credit_orders to authenticated;
create policy credit_orders_owners_read on public.credit_orders for select to authenticated
  using (workspace_id in (select oneai_private.workspaces_with_role('owner')));
create policy credit_orders_owners_create on public.credit_orders for insert to authenticated
  with check (
    workspace_id in (select oneai_private.workspaces_with_role('owner')) and created_by = (select auth.uid())
  );

-- Reservations: no grant at all; the functions below are their only way.

-- The usage a workspace's credits paid for (its chatbots' replies, `usage_records.workspace_id`): its admins
-- and owners read it, whoever the reply was for (a member testing a chatbot, a widget visitor). A user's
-- own records stay theirs (`usage_records_select_own`); every user-facing query of usage_records names the
-- caller's `user_id` explicitly, so this policy adds nothing to a person's own usage reports.
create policy usage_records_workspace_admins_read on public.usage_records for select to authenticated
  using (workspace_id is not null and workspace_id in (select oneai_private.workspaces_with_role('admin')));

-- ---------------------------------------------------------------------------------------------
-- Helpers
-- ---------------------------------------------------------------------------------------------
-- The caller may spend this workspace's credits: the service role, or a member (viewer and up).
create function oneai_private.credits_caller_may(p_workspace_id uuid) returns boolean
language sql stable security definer
set search_path = ''
as $$
  select coalesce((select auth.role()) = 'service_role', false)
    or oneai_private.has_workspace_role(p_workspace_id, 'viewer')
$$;

-- Rounded up to the millionth of a rupee (a charge never rounds down to nothing).
create function oneai_private.credits_round_up(p_value numeric) returns numeric
language sql immutable parallel safe
set search_path = ''
as $$
  select ceil(p_value * 1000000) / 1000000
$$;

-- Add `p_amount` (> 0) to a workspace's balance with its ledger row, under the account row's lock; the
-- low-balance warning is re-armed once the balance is back at or over the threshold. Internal: the
-- callers (purchase, grant) check who may do it.
create function oneai_private.credit_account(p_workspace_id uuid, p_type text, p_amount numeric, p_fields jsonb)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_account public.workspace_credits;
  v_id uuid;
begin
  if p_amount is null or p_amount <= 0 then
    raise exception 'credit_account: an amount > 0 is required' using errcode = '22023';
  end if;
  update public.workspace_credits c set
    balance = c.balance + p_amount,
    low_balance_warned = c.low_balance_warned and c.balance + p_amount < c.low_balance_threshold,
    updated_at = now()
  where c.workspace_id = p_workspace_id
  returning c.* into v_account;
  if not found then
    return null;
  end if;
  insert into public.credit_transactions (
    workspace_id, type, amount, balance_after, razorpay_order_id, razorpay_payment_id, actor_id, reason)
  values (
    p_workspace_id, p_type, p_amount, v_account.balance, p_fields->>'razorpay_order_id',
    p_fields->>'razorpay_payment_id', (p_fields->>'actor_id')::uuid, p_fields->>'reason')
  returning id into v_id;
  return jsonb_build_object('transaction_id', v_id, 'balance', v_account.balance, 'amount', p_amount);
end
$$;

revoke execute on function oneai_private.credits_caller_may(uuid), oneai_private.credits_round_up(numeric),
  oneai_private.credit_account(uuid, text, numeric, jsonb) from public;
grant execute on function oneai_private.credits_caller_may(uuid), oneai_private.credits_round_up(numeric)
  to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- Reserve, settle, refund (a chatbot's reply paid from credits)
-- ---------------------------------------------------------------------------------------------
-- Hold `p_amount` for a reply. Answers {"reservation_id", "balance", "available"} (available after the
-- hold), or {"refused": "insufficient_credits", "balance", "available", "needed"}, or {"refused":
-- "not_found"} (no such live workspace for the caller). The admission is the one UPDATE ... WHERE below.
create function oneai_private.reserve_credits(p_workspace_id uuid, p_amount numeric)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_answer jsonb;
begin
  if p_amount is null or p_amount <= 0 then
    raise exception 'reserve_credits: an amount > 0 is required (got %)', p_amount using errcode = '22023';
  end if;
  if not oneai_private.credits_caller_may(p_workspace_id)
     or not exists (select 1 from public.workspaces w where w.id = p_workspace_id and w.deleted_at is null) then
    return jsonb_build_object('refused', 'not_found');
  end if;

  with held as (
    update public.workspace_credits c set reserved = c.reserved + p_amount, updated_at = now()
    where c.workspace_id = p_workspace_id and c.balance - c.reserved >= p_amount
    returning c.workspace_id, c.balance, c.reserved
  ), reservation as (
    insert into public.credit_reservations (workspace_id, amount)
    select h.workspace_id, p_amount from held h
    returning id
  )
  select jsonb_build_object('reservation_id', r.id, 'balance', h.balance, 'available', h.balance - h.reserved)
  into v_answer
  from held h cross join reservation r;
  if v_answer is not null then
    return v_answer;
  end if;

  select jsonb_build_object('refused', 'insufficient_credits', 'balance', c.balance,
    'available', c.balance - c.reserved, 'needed', p_amount)
  into v_answer
  from public.workspace_credits c where c.workspace_id = p_workspace_id;
  return coalesce(v_answer, jsonb_build_object('refused', 'not_found'));
end
$$;

-- Settle a held reservation with the reply's real cost: OpenRouter's `p_cost_usd` x `p_rate` (INR per
-- USD) x `p_markup`, rounded up to the millionth of a rupee. The hold is released and the cost taken, at
-- most what the balance has beyond the other replies' holds: a cost over that is recorded as the
-- transaction's `shortfall` (the reply was served; the balance stops at zero, never below). Answers
-- {"transaction_id", "charged", "cost", "shortfall", "balance", "low_balance": null | {"workspace_id",
-- "owner_id", "threshold", "balance", "crossing"}} (`low_balance` when this settle crossed the threshold
-- downward), or {"refused": "not_held"} (unknown, already settled or refunded: nothing changes).
create function oneai_private.settle_credits(
  p_reservation_id uuid, p_cost_usd numeric, p_rate numeric, p_markup numeric, p_usage_record_id uuid default null
)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_reservation public.credit_reservations;
  v_account public.workspace_credits;
  v_cost numeric;
  v_charge numeric;
  v_balance numeric;
  v_crossed boolean;
  v_id uuid;
  v_low jsonb;
begin
  if p_cost_usd is null or p_cost_usd < 0 or p_rate is null or p_rate <= 0 or p_markup is null or p_markup <= 0 then
    raise exception 'settle_credits: a cost >= 0, a rate > 0 and a markup > 0 are required' using errcode = '22023';
  end if;
  update public.credit_reservations r set status = 'settled', finished_at = now()
  where r.id = p_reservation_id and r.status = 'held'
  returning r.* into v_reservation;
  if not found then
    return jsonb_build_object('refused', 'not_held');
  end if;
  if not oneai_private.credits_caller_may(v_reservation.workspace_id) then
    raise exception 'settle_credits: not a member of the workspace' using errcode = '42501';
  end if;

  select * into v_account from public.workspace_credits c where c.workspace_id = v_reservation.workspace_id
  for update;
  v_cost := oneai_private.credits_round_up(p_cost_usd * p_rate * p_markup);
  -- At most what is left once this hold is released and the others stay covered.
  v_charge := least(v_cost, v_account.balance - (v_account.reserved - v_reservation.amount));
  v_balance := v_account.balance - v_charge;
  v_crossed := not v_account.low_balance_warned
    and v_account.balance >= v_account.low_balance_threshold and v_balance < v_account.low_balance_threshold;
  update public.workspace_credits c set
    reserved = c.reserved - v_reservation.amount,
    balance = v_balance,
    low_balance_warned = c.low_balance_warned or v_crossed,
    low_balance_crossings = c.low_balance_crossings + case when v_crossed then 1 else 0 end,
    updated_at = now()
  where c.workspace_id = v_reservation.workspace_id
  returning c.* into v_account;

  insert into public.credit_transactions (
    workspace_id, type, amount, balance_after, reservation_id, usage_record_id, cost_usd, usd_inr_rate, markup,
    shortfall)
  values (
    v_reservation.workspace_id, 'usage', -v_charge, v_balance, v_reservation.id, p_usage_record_id, p_cost_usd,
    p_rate, p_markup, v_cost - v_charge)
  returning id into v_id;

  if v_crossed then
    select jsonb_build_object('workspace_id', w.id, 'workspace_name', w.name, 'owner_id', w.owner_id,
      'threshold', v_account.low_balance_threshold, 'balance', v_balance, 'crossing', v_account.low_balance_crossings)
    into v_low
    from public.workspaces w where w.id = v_reservation.workspace_id;
  end if;
  return jsonb_build_object('transaction_id', v_id, 'workspace_id', v_reservation.workspace_id,
    'reserved', v_reservation.amount, 'charged', v_charge, 'cost', v_cost, 'shortfall', v_cost - v_charge,
    'balance', v_balance, 'low_balance', v_low);
end
$$;

-- Give a held reservation back whole (the upstream failed before the first token): the balance never
-- moved, so no ledger row is written. True when a hold was released.
create function oneai_private.refund_credits(p_reservation_id uuid)
returns boolean
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_reservation public.credit_reservations;
begin
  update public.credit_reservations r set status = 'refunded', finished_at = now()
  where r.id = p_reservation_id and r.status = 'held'
  returning r.* into v_reservation;
  if not found then
    return false;
  end if;
  if not oneai_private.credits_caller_may(v_reservation.workspace_id) then
    raise exception 'refund_credits: not a member of the workspace' using errcode = '42501';
  end if;
  update public.workspace_credits c set reserved = c.reserved - v_reservation.amount, updated_at = now()
  where c.workspace_id = v_reservation.workspace_id;
  return true;
end
$$;

-- Holds older than `p_older_than` belong to replies whose function died before settling (a reply is
-- limited to ONEAI_REPLY_TIME_LIMIT): they are given back, in batches, by the service. How many.
create function oneai_private.release_stale_credit_reservations(p_older_than interval, p_batch integer)
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_released integer := 0;
  v_id uuid;
begin
  if coalesce((select auth.role()), '') <> 'service_role' then
    raise exception 'release_stale_credit_reservations is the service''s' using errcode = '42501';
  end if;
  for v_id in
    select r.id from public.credit_reservations r
    where r.status = 'held' and r.created_at < now() - p_older_than
    order by r.created_at limit p_batch
    for update skip locked
  loop
    if oneai_private.refund_credits(v_id) then
      v_released := v_released + 1;
    end if;
  end loop;
  return v_released;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Purchases (the webhooks function), grants (the admin function and the welcome grant)
-- ---------------------------------------------------------------------------------------------
-- Credit the order `p_order_id` once, when Razorpay says it is paid (`payment.captured` or `order.paid`,
-- in any order, any number of times). The order row is locked first: of two concurrent deliveries the
-- second finds it paid. Answers {"outcome": "credited", "workspace_id", "transaction_id", "balance"} or
-- {"outcome": "not_ours" | "already_credited" | "amount_mismatch"}. Service role only.
create function oneai_private.apply_credit_purchase(
  p_order_id text, p_payment_id text, p_amount_paise bigint, p_currency text
)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_order public.credit_orders;
  v_credit jsonb;
begin
  if coalesce((select auth.role()), '') <> 'service_role' then
    raise exception 'apply_credit_purchase is the service''s' using errcode = '42501';
  end if;
  select * into v_order from public.credit_orders o where o.razorpay_order_id = p_order_id for update;
  if not found then
    return jsonb_build_object('outcome', 'not_ours');
  end if;
  if v_order.paid_at is not null then
    return jsonb_build_object('outcome', 'already_credited', 'workspace_id', v_order.workspace_id);
  end if;
  if p_payment_id is null or p_amount_paise is null or p_amount_paise < v_order.amount_paise
     or upper(coalesce(p_currency, '')) <> v_order.currency then
    return jsonb_build_object('outcome', 'amount_mismatch', 'workspace_id', v_order.workspace_id);
  end if;
  update public.credit_orders o set paid_at = now(), razorpay_payment_id = p_payment_id
  where o.razorpay_order_id = p_order_id;
  v_credit := oneai_private.credit_account(v_order.workspace_id, 'purchase', v_order.amount,
    jsonb_build_object('razorpay_order_id', p_order_id, 'razorpay_payment_id', p_payment_id));
  if v_credit is null then
    return jsonb_build_object('outcome', 'not_ours');
  end if;
  return v_credit || jsonb_build_object('outcome', 'credited', 'workspace_id', v_order.workspace_id);
end
$$;

-- A grant by an admin of the product (`p_actor_id`) with its reason; or, with a null actor and the
-- reason 'welcome', the welcome grant (once per workspace: a repeat answers null). Service role only.
create function oneai_private.grant_credits(p_workspace_id uuid, p_amount numeric, p_reason text, p_actor_id uuid)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
begin
  if coalesce((select auth.role()), '') <> 'service_role' then
    raise exception 'grant_credits is the service''s' using errcode = '42501';
  end if;
  if p_actor_id is null and p_reason = 'welcome' then
    perform 1 from public.workspace_credits c where c.workspace_id = p_workspace_id for update;
    if exists (
      select 1 from public.credit_transactions t
      where t.workspace_id = p_workspace_id and t.type = 'grant' and t.actor_id is null and t.reason = 'welcome'
    ) then
      return null;
    end if;
  end if;
  return oneai_private.credit_account(p_workspace_id, 'grant', p_amount,
    jsonb_build_object('actor_id', p_actor_id, 'reason', p_reason));
end
$$;

revoke execute on function oneai_private.reserve_credits(uuid, numeric),
  oneai_private.settle_credits(uuid, numeric, numeric, numeric, uuid),
  oneai_private.refund_credits(uuid),
  oneai_private.release_stale_credit_reservations(interval, integer),
  oneai_private.apply_credit_purchase(text, text, bigint, text),
  oneai_private.grant_credits(uuid, numeric, text, uuid) from public;
grant execute on function oneai_private.reserve_credits(uuid, numeric),
  oneai_private.settle_credits(uuid, numeric, numeric, numeric, uuid),
  oneai_private.refund_credits(uuid) to authenticated, service_role;
grant execute on function oneai_private.release_stale_credit_reservations(interval, integer),
  oneai_private.apply_credit_purchase(text, text, bigint, text),
  oneai_private.grant_credits(uuid, numeric, text, uuid) to service_role;

-- ---------------------------------------------------------------------------------------------
-- The low-balance email is a notification like the others (claimed once per crossing)
-- ---------------------------------------------------------------------------------------------
alter table public.sent_notifications drop constraint sent_notifications_kind_check;
alter table public.sent_notifications add constraint sent_notifications_kind_check check (kind in (
  'welcome', 'quota_warning', 'payment_failed', 'payment_received', 'subscription_ended', 'usage_summary',
  'workspace_invitation', 'credits_low'
));
