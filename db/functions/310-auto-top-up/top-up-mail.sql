-- Who is told about auto top-up and what they read: the admins and owners of the organization,
-- with the attempt's facts (workers/tasks/send_auto_top_up_email.ts sends one mail to each).

create or replace function app_private.auto_top_up_mail(organization_id uuid, attempt_id uuid)
returns table (
  email text, name text, organization_name text, credits bigint, amount bigint, currency text,
  decline_code text, action_url text, attempt_status text
)
  language plpgsql stable security definer
  set search_path = pg_catalog, public
as $$
begin
  return query
  select u.email::text, u.name::text, o.name::text, a.credits, a.amount, a.currency, a.decline_code, a.action_url, a.status
  from app_public.organizations o
  join app_public.organization_members m on m.organization_id = o.id and m.role >= 'admin'
  join app_public.users u on u.id = m.user_id
  left join app_public.auto_top_up_attempts a on a.organization_id = o.id and a.id = auto_top_up_mail.attempt_id
  where o.id = auto_top_up_mail.organization_id and o.deleted_at is null
  order by u.email
  limit 50;
end;
$$;
