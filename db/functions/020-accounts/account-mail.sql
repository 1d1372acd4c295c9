-- Which account mails exist and how they are queued: one job, send_account_email, per mail, in
-- the transaction of the change that causes it (a rollback sends nothing). The worker
-- (workers/tasks/send_account_email.ts) issues the token, if the mail carries one, when it runs.
-- kinds: verify_email, reset_password, change_email (to the new address), email_changed (notice
-- to the old address). A repeat of the same request replaces a mail not sent yet (job_key).
-- reset_password is queued by address (user_id null, details.email): forgotPassword does not
-- look the address up, the worker does.

create or replace function app_private.queue_account_email(kind text, user_id uuid, details jsonb default '{}')
returns void
  language plpgsql volatile security definer
  set search_path = pg_catalog, public
as $$
begin
  if queue_account_email.kind not in ('verify_email', 'reset_password', 'change_email', 'email_changed') then
    raise exception 'unknown account email %', queue_account_email.kind;
  end if;
  perform graphile_worker.add_job(
    'send_account_email',
    (jsonb_strip_nulls(jsonb_build_object('kind', queue_account_email.kind, 'userId', queue_account_email.user_id))
      || coalesce(queue_account_email.details, '{}'))::json,
    job_key => (case when queue_account_email.kind = 'email_changed' then null
                    else 'account_email:' || queue_account_email.kind || ':'
                         || coalesce(queue_account_email.user_id::text,
                                     encode(digest(queue_account_email.details ->> 'email', 'sha256'), 'hex')) end)::text,
    max_attempts => 10
  );
end;
$$;
comment on function app_private.queue_account_email(text, uuid, jsonb) is
  'Queues an account mail (send_account_email job) in the current transaction.';
