-- A provider sign-in between its start (GET /auth/<provider>/start) and the provider's callback
-- (server/identity/). PKCE verifier (S256), state and nonce are made here, kept ten minutes, bound
-- to the browser that started the flow (the hash of its cookie), and taken once: a replayed state,
-- another browser's callback or a late one finds nothing (SIGN_IN_FLOW_INVALID). Flows started
-- are limited per client address (attempt limits, action sign_in_flow).

create or replace trigger _100_audit_columns before insert or update on app_private.sign_in_flows
  for each row execute function app_private.tg_audit_columns();

-- Random URL-safe text of 32 bytes (43 characters), what PKCE asks of a verifier.
create or replace function app_private.random_url_token() returns text
  language sql volatile
  set search_path = pg_catalog, public
as $$
  select rtrim(translate(encode(gen_random_bytes(32), 'base64'), '+/', '-_'), '=');
$$;

create or replace function app_private.start_sign_in_flow(provider text, browser_secret text, redirect_url text, link_user_id uuid)
  returns table (state text, nonce text, code_verifier text)
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_state text := app_private.random_url_token();
  v_nonce text := app_private.random_url_token();
  v_verifier text := app_private.random_url_token();
begin
  if length(coalesce(start_sign_in_flow.browser_secret, '')) < 32 then
    raise exception 'a sign-in flow needs a browser secret';
  end if;
  perform app_private.take_attempt('sign_in_flow', 'address', app_hidden.client_address());
  perform app_private.take_attempt('sign_in_flow', 'user', start_sign_in_flow.link_user_id::text);
  -- flows never finished are cleared as new ones start (bounded work per call)
  delete from app_private.sign_in_flows f
  where f.id in (select f2.id from app_private.sign_in_flows f2 where f2.expires_at < now() - interval '1 hour' limit 100);
  insert into app_private.sign_in_flows (provider, state_hash, nonce, code_verifier, browser_hash, redirect_url, link_user_id, expires_at)
  values (start_sign_in_flow.provider, digest(v_state, 'sha256'), v_nonce, v_verifier,
          digest(start_sign_in_flow.browser_secret, 'sha256'), start_sign_in_flow.redirect_url,
          start_sign_in_flow.link_user_id, now() + interval '10 minutes');
  return query select v_state, v_nonce, v_verifier;
end;
$$;

-- The callback: the flow this state names, if this browser started it for this provider, it has
-- not expired and was never taken. Taking it spends the state for good.
create or replace function app_private.take_sign_in_flow(provider text, state text, browser_secret text)
  returns app_private.sign_in_flows
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_flow app_private.sign_in_flows;
begin
  update app_private.sign_in_flows f set used_at = now()
  where f.state_hash = digest(left(coalesce(take_sign_in_flow.state, ''), 200), 'sha256')
    and f.browser_hash = digest(coalesce(take_sign_in_flow.browser_secret, ''), 'sha256')
    and f.provider = take_sign_in_flow.provider
    and f.used_at is null and f.expires_at > now()
  returning * into v_flow;
  if not found then
    perform app_hidden.raise_error('SIGN_IN_FLOW_INVALID', 'This sign-in expired or was already used; start again.');
  end if;
  return v_flow;
end;
$$;

-- After the provider's answer was checked (server/identity/): the account it leads to
-- (identity-linking.sql), once per flow. Returns the one-time code for the app, or null when the
-- flow linked a provider to a signed-in account.
create or replace function app_private.complete_sign_in_flow(
  flow_id uuid, issuer text, subject text, email text, email_verified boolean, name text
) returns text
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
declare
  v_flow app_private.sign_in_flows;
  v_identity_id uuid;
begin
  update app_private.sign_in_flows f set completed_at = now()
  where f.id = complete_sign_in_flow.flow_id and f.used_at is not null and f.completed_at is null
    and f.expires_at > now()
  returning * into v_flow;
  if not found then
    perform app_hidden.raise_error('SIGN_IN_FLOW_INVALID', 'This sign-in expired or was already used; start again.');
  end if;
  v_identity_id := app_private.sign_in_with_identity(v_flow.provider, complete_sign_in_flow.issuer, complete_sign_in_flow.subject,
    complete_sign_in_flow.email, complete_sign_in_flow.email_verified, complete_sign_in_flow.name, v_flow.link_user_id);
  if v_flow.link_user_id is not null then
    return null;
  end if;
  return app_private.issue_sign_in_code(v_identity_id);
end;
$$;
