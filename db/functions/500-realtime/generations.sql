-- Generation changes reach the organization's `generations` channel: started, completed,
-- failed. The notification names the generation and its project (the server's projectId
-- filter) and carries the row as this change left it (`row`, PostgreSQL's record text), so a
-- subscriber is told every status the generation passed through, in commit order, never the
-- row as it is when the message happens to be delivered (issue 20, item 9). NOTIFY carries at
-- most 8,000 bytes: a row larger than that (a large metadata document) goes without `row`, and
-- the server reads it once for every subscriber (app_private.realtime_current_row).

create or replace function app_private.tg_generations_realtime() returns trigger
  language plpgsql volatile
as $$
declare
  v_payload text := json_build_object('id', new.id, 'project_id', new.project_id, 'row', new::text)::text;
begin
  if octet_length(v_payload) > 7900 then
    v_payload := json_build_object('id', new.id, 'project_id', new.project_id)::text;
  end if;
  perform pg_notify(app_hidden.realtime_topic('generations', new.organization_id), v_payload);
  return null;
end;
$$;
comment on function app_private.tg_generations_realtime() is
  'Notifies generationUpdated subscribers of a new or changed generation: its ids and the row as the change left it.';

create or replace trigger _950_realtime after insert or update on app_public.generations
  for each row execute function app_private.tg_generations_realtime();
