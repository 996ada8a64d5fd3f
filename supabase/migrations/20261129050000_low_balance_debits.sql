-- The low-balance warning for every debit, not only a reply's settle (issue 26, item 5).
--
-- Until now only `settle_credits` counted a downward crossing of the threshold. A Razorpay refund or an
-- admin's downward adjustment that took the balance under it left the account unwarned, and every later
-- settle then started under the threshold, so it never crossed: the owner was never told the balance was
-- low, however far it fell. Both now take their debit through `debit_account`, which applies the settle's
-- rule (a crossing when the balance goes from at or over the threshold to under it, once until a credit
-- brings it back) and answers the crossing's notice, which their callers publish after the commit as the
-- settle's is (`oneai.credits` / `CreditsLow`; the notifications function claims one email per crossing).
-- Both functions are restated whole with only their debit changed (`create or replace` needs the body).

-- The notice of a crossing: what the CreditsLow event carries (the account row as updated).
create function oneai_private.low_balance_notice(p_account public.workspace_credits)
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
  select jsonb_build_object('workspace_id', w.id, 'workspace_name', w.name, 'owner_id', w.owner_id,
    'threshold', p_account.low_balance_threshold, 'balance', p_account.balance,
    'crossing', p_account.low_balance_crossings)
  from public.workspaces w where w.id = p_account.workspace_id
$$;

-- Take `p_take` (>= 0) from an account the caller has locked (`p_locked`, read FOR UPDATE), counting a
-- downward crossing of the threshold as settle_credits does. Answers {"balance" (after the debit),
-- "low_balance" (the crossing's notice, null when this debit did not cross)}. Internal: the callers check
-- who may debit.
create function oneai_private.debit_account(p_locked public.workspace_credits, p_take numeric)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_crossed boolean;
  v_account public.workspace_credits;
begin
  if p_take is null or p_take < 0 then
    raise exception 'debit_account: an amount >= 0 is required' using errcode = '22023';
  end if;
  v_crossed := not p_locked.low_balance_warned and p_locked.balance >= p_locked.low_balance_threshold
    and p_locked.balance - p_take < p_locked.low_balance_threshold;
  update public.workspace_credits c set
    balance = c.balance - p_take,
    low_balance_warned = c.low_balance_warned or v_crossed,
    low_balance_crossings = c.low_balance_crossings + case when v_crossed then 1 else 0 end,
    updated_at = now()
  where c.workspace_id = p_locked.workspace_id
  returning c.* into v_account;
  return jsonb_build_object('balance', v_account.balance,
    'low_balance', case when v_crossed then oneai_private.low_balance_notice(v_account) end);
end
$$;

revoke execute on function oneai_private.low_balance_notice(public.workspace_credits),
  oneai_private.debit_account(public.workspace_credits, numeric) from public;

-- As in 20261128030000_credit_refunds.sql, the debit through debit_account; the answer of a refund that
-- crossed the threshold carries `low_balance` (null otherwise).
create or replace function oneai_private.apply_credit_refund(
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
  v_debit jsonb;
  v_balance numeric;
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
  select coalesce(sum(-t.amount + coalesce(t.shortfall, 0)), 0) into v_refunded
  from public.credit_transactions t where t.type = 'refund' and t.razorpay_payment_id = p_payment_id;
  v_amount := least(p_amount_paise::numeric / 100, greatest(v_order.amount - v_refunded, 0));

  select * into v_account from public.workspace_credits c where c.workspace_id = v_order.workspace_id for update;
  if not found then
    return jsonb_build_object('outcome', 'not_ours');
  end if;
  v_take := least(v_amount, v_account.balance - v_account.reserved);
  v_debit := oneai_private.debit_account(v_account, v_take);
  v_balance := (v_debit->>'balance')::numeric;
  insert into public.credit_transactions (
    workspace_id, type, amount, balance_after, razorpay_order_id, razorpay_payment_id, razorpay_refund_id,
    shortfall)
  values (
    v_order.workspace_id, 'refund', -v_take, v_balance, v_order.razorpay_order_id, p_payment_id,
    p_refund_id, v_amount - v_take)
  returning id into v_id;
  return jsonb_build_object('outcome', 'refunded', 'workspace_id', v_order.workspace_id, 'transaction_id', v_id,
    'refunded', v_take, 'shortfall', v_amount - v_take, 'balance', v_balance, 'low_balance', v_debit->'low_balance');
end
$$;

-- As in 20261128030000_credit_refunds.sql, the debit through debit_account; the answer of a debit that
-- crossed the threshold carries `low_balance` (null otherwise).
create or replace function oneai_private.adjust_credits(
  p_workspace_id uuid, p_amount numeric, p_reason text, p_actor_id uuid
)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_account public.workspace_credits;
  v_debit jsonb;
  v_balance numeric;
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
  v_debit := oneai_private.debit_account(v_account, -p_amount);
  v_balance := (v_debit->>'balance')::numeric;
  insert into public.credit_transactions (workspace_id, type, amount, balance_after, actor_id, reason)
  values (p_workspace_id, 'adjustment', p_amount, v_balance, p_actor_id, p_reason)
  returning id into v_id;
  return jsonb_build_object('transaction_id', v_id, 'balance', v_balance, 'amount', p_amount,
    'low_balance', v_debit->'low_balance');
end
$$;
