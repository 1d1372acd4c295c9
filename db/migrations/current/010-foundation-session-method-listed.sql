-- mySessions says how each session was made (password, provider, sso, passkey).
do $$
begin
  if not exists (select 1 from pg_attribute a join pg_type t on t.typrelid = a.attrelid
                 join pg_namespace n on n.oid = t.typnamespace
                 where n.nspname = 'app_public' and t.typname = 'user_session' and a.attname = 'method') then
    alter type app_public.user_session add attribute method text;
  end if;
end;
$$;
