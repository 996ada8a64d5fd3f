-- The credits ledger's `refund` and `adjustment` rows (issue 26, item 4; docs/api/credits.md).
--
-- A refund: Razorpay's `refund.processed` of a payment that bought credits debits the refunded amount
-- (partial refunds too), once per Razorpay refund id, never below zero: what the balance beyond the
-- running replies' holds cannot cover is the row's `shortfall` (as a settle records it).
-- An adjustment: an admin of the product corrects a balance up or down with a reason; down only within
-- what the balance has beyond the holds.

alter table public.credit_transactions add column razorpay_refund_id text
  check (razorpay_refund_id is null or char_length(razorpay_refund_id) between 1 and 100);

alter table public.credit_transactions add constraint credit_transactions_refund check (
  type <> 'refund' or (amount <= 0 and razorpay_refund_id is not null and razorpay_payment_id is not null));
-- (The admin is required when an adjustment is made, by adjust_credits; the row outlives the admin's account:
-- actor_id is set null when that user is erased.)
alter table public.credit_transactions add constraint credit_transactions_adjustment check (
  type <> 'adjustment' or (amount <> 0 and reason is not null));

-- A Razorpay refund debits once.
create unique index credit_transactions_one_per_refund on public.credit_transactions (razorpay_refund_id)
  where type = 'refund';

-- Debit the refund `p_refund_id` (`p_amount_paise` of the payment `p_payment_id`) from the workspace whose
-- credits order that payment paid, once. The order row is locked first (as apply_credit_purchase does),
-- then the account row. The debit is at most what the balance has beyond the running replies' holds; the
-- rest is recorded as the row's `shortfall`. The refunds of one payment never debit more than its order
-- credited. Answers {"outcome": "refunded", "workspace_id", "transaction_id", "refunded", "shortfall",
-- "balance"} or {"outcome": "not_ours" | "already_refunded" | "currency_mismatch"}
-- (`not_ours` too while the purchase is not credited: the webhooks function credits it first). Service role only.
create function oneai_private.apply_credit_refund(
  p_refund_id text, p_payment_id text, p_amount_paise bigint, p_currency text
)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_order public.credit_orders;
  v_account public.workspace_credits;
  v_amount numeric;
  v_refunded numeric;
  v_take numeric;
  v_id uuid;
begin
  if coalesce((select auth.role()), '') <> 'service_role' then
    raise exception 'apply_credit_refund is the service''s' using errcode = '42501';
  end if;
  if p_refund_id is null or p_payment_id is null or p_amount_paise is null or p_amount_paise <= 0 then
    raise exception 'apply_credit_refund: a refund id, a payment id and an amount > 0 are required'
      using errcode = '22023';
  end if;
  select * into v_order from public.credit_orders o where o.razorpay_payment_id = p_payment_id for update;
  if not found then
    return jsonb_build_object('outcome', 'not_ours');
  end if;
  if exists (
    select 1 from public.credit_transactions t where t.type = 'refund' and t.razorpay_refund_id = p_refund_id
  ) then
    return jsonb_build_object('outcome', 'already_refunded', 'workspace_id', v_order.workspace_id);
  end if;
  if upper(coalesce(p_currency, '')) <> v_order.currency then
    return jsonb_build_object('outcome', 'currency_mismatch', 'workspace_id', v_order.workspace_id);
  end if;
  -- What this payment's earlier refunds asked for (debited or short): together never over the order.
  select coalesce(sum(-t.amount + coalesce(t.shortfall, 0)), 0) into v_refunded
  from public.credit_transactions t where t.type = 'refund' and t.razorpay_payment_id = p_payment_id;
  v_amount := least(p_amount_paise::numeric / 100, greatest(v_order.amount - v_refunded, 0));

  select * into v_account from public.workspace_credits c where c.workspace_id = v_order.workspace_id for update;
  if not found then
    return jsonb_build_object('outcome', 'not_ours');
  end if;
  v_take := least(v_amount, v_account.balance - v_account.reserved);
  update public.workspace_credits c set balance = c.balance - v_take, updated_at = now()
  where c.workspace_id = v_order.workspace_id
  returning c.* into v_account;
  insert into public.credit_transactions (
    workspace_id, type, amount, balance_after, razorpay_order_id, razorpay_payment_id, razorpay_refund_id,
    shortfall)
  values (
    v_order.workspace_id, 'refund', -v_take, v_account.balance, v_order.razorpay_order_id, p_payment_id,
    p_refund_id, v_amount - v_take)
  returning id into v_id;
  return jsonb_build_object('outcome', 'refunded', 'workspace_id', v_order.workspace_id, 'transaction_id', v_id,
    'refunded', v_take, 'shortfall', v_amount - v_take, 'balance', v_account.balance);
end
$$;

-- An admin's adjustment (`p_amount` signed, non-zero) with its reason. Up: like a grant. Down: at most what
-- the balance has beyond the running replies' holds, else nothing changes. Answers {"transaction_id",
-- "balance", "amount"}, {"refused": "insufficient_credits", "available"}, or null (no such workspace).
-- Service role only.
create function oneai_private.adjust_credits(p_workspace_id uuid, p_amount numeric, p_reason text, p_actor_id uuid)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_account public.workspace_credits;
  v_id uuid;
begin
  if coalesce((select auth.role()), '') <> 'service_role' then
    raise exception 'adjust_credits is the service''s' using errcode = '42501';
  end if;
  if p_amount is null or p_amount = 0 or p_reason is null or p_actor_id is null then
    raise exception 'adjust_credits: a non-zero amount, a reason and an actor are required' using errcode = '22023';
  end if;
  if p_amount > 0 then
    return oneai_private.credit_account(p_workspace_id, 'adjustment', p_amount,
      jsonb_build_object('actor_id', p_actor_id, 'reason', p_reason));
  end if;
  select * into v_account from public.workspace_credits c where c.workspace_id = p_workspace_id for update;
  if not found then
    return null;
  end if;
  if v_account.balance - v_account.reserved < -p_amount then
    return jsonb_build_object('refused', 'insufficient_credits',
      'available', v_account.balance - v_account.reserved, 'balance', v_account.balance);
  end if;
  update public.workspace_credits c set balance = c.balance + p_amount, updated_at = now()
  where c.workspace_id = p_workspace_id
  returning c.* into v_account;
  insert into public.credit_transactions (workspace_id, type, amount, balance_after, actor_id, reason)
  values (p_workspace_id, 'adjustment', p_amount, v_account.balance, p_actor_id, p_reason)
  returning id into v_id;
  return jsonb_build_object('transaction_id', v_id, 'balance', v_account.balance, 'amount', p_amount);
end
$$;

revoke execute on function oneai_private.apply_credit_refund(text, text, bigint, text),
  oneai_private.adjust_credits(uuid, numeric, text, uuid) from public;
grant execute on function oneai_private.apply_credit_refund(text, text, bigint, text),
  oneai_private.adjust_credits(uuid, numeric, text, uuid) to service_role;
