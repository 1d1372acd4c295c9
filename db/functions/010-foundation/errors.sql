-- How a business rule reaches the client: one helper raises SQLSTATE TB000 with the public code.

-- Every business-rule violation is raised through this one helper: SQLSTATE TB000 marks it as
-- public, DETAIL carries the stable code. The server passes these to the client as
-- extensions.code and masks every other error (server/errors.ts).
create or replace function app_hidden.raise_error(code text, message text) returns void
  language plpgsql volatile
as $$
begin
  raise exception using errcode = 'TB000', message = message, detail = code;
end;
$$;
comment on function app_hidden.raise_error(text, text) is
  'Raises a business error whose code (e.g. INSUFFICIENT_CREDITS) reaches the GraphQL client.';

-- The same, with extra public fields for extensions (e.g. {"retryAfter": 60} for
-- TOO_MANY_ATTEMPTS): a JSON object of strings, numbers and booleans, carried in HINT; the server
-- merges it into extensions next to the code.
create or replace function app_hidden.raise_error_with(code text, message text, extensions jsonb) returns void
  language plpgsql volatile
as $$
begin
  raise exception using errcode = 'TB000', message = message, detail = code, hint = extensions::text;
end;
$$;
comment on function app_hidden.raise_error_with(text, text, jsonb) is
  'Raises a business error like raise_error, with extra extensions fields (a flat JSON object) for the client.';
