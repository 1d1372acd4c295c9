-- Generation changes reach the organization's `generations` channel: started, completed,
-- failed. The notification names the generation and its project (the server's projectId
-- filter); status, credits and metadata are read by each subscriber under RLS.

create or replace function app_private.tg_generations_realtime() returns trigger
  language plpgsql volatile
as $$
begin
  perform pg_notify(
    app_hidden.realtime_topic('generations', new.organization_id),
    json_build_object('id', new.id, 'project_id', new.project_id)::text
  );
  return null;
end;
$$;
comment on function app_private.tg_generations_realtime() is
  'Notifies generationUpdated subscribers of a new or changed generation (ids only).';

create or replace trigger _950_realtime after insert or update on app_public.generations
  for each row execute function app_private.tg_generations_realtime();
