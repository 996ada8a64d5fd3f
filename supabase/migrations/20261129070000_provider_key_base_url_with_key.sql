-- A custom provider key's base_url moves only with a new key (issue 26's promise that a key, once saved,
-- is never shown again, to anyone).
--
-- The hole: every call made with a `custom` key sends the key, in the Authorization header, to the key's
-- base_url. An admin who did not enter a key (and may not read it: no SELECT on `sealed_key`) could set
-- its base_url to a server of their own (`PATCH /provider-keys/{id}` with `base_url` only, or an UPDATE
-- under RLS, which `authenticated` may make on that column) and press "test": the key arrives at their
-- server. The API now refuses a new base_url without the key (422 on `key`,
-- oneai.provider_keys.service.update_key); this trigger is the same rule for every writer, so a direct
-- UPDATE cannot skip it.
--
-- Rule: an UPDATE that changes `base_url` must replace `sealed_key` in the same statement. The service
-- role never moves a base_url; the rule holds for it too.

create function oneai_private.provider_key_base_url_moves_with_its_key()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.base_url is distinct from old.base_url and new.sealed_key = old.sealed_key then
    raise exception 'a provider key''s base_url changes only with a new key'
      using errcode = 'check_violation', constraint = 'provider_keys_base_url_with_key';
  end if;
  return new;
end
$$;

create trigger provider_keys_base_url_with_key before update of base_url on public.provider_keys
  for each row execute function oneai_private.provider_key_base_url_moves_with_its_key();

-- A trigger function is called by the trigger, never by a caller: nobody gets to execute it directly.
revoke execute on function oneai_private.provider_key_base_url_moves_with_its_key() from public;
