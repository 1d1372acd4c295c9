-- Generations: members read their organization's; start / complete / fail go through the
-- SECURITY DEFINER functions, which check membership and move the credits.

grant execute on function
  app_public.start_generation(uuid, uuid, app_public.generation_kind, text, jsonb, numeric, text),
  app_public.complete_generation(uuid, numeric, jsonb),
  app_public.fail_generation(uuid, text)
to app_user;

-- The prompt search condition, (metadata->>'prompt') %> 'text', runs pg_trgm's operator function.
grant execute on function
  public.word_similarity_commutator_op(text, text),
  public.word_similarity(text, text),
  public.similarity(text, text)
to app_user;

select app_private.secure_table('app_public.generations');
grant select on app_public.generations to app_user;
create policy select_member on app_public.generations for select to app_user
  using (organization_id = any (current_setting('tenantbase.organization_ids')::uuid[]));
