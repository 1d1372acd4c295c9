-- The invitation email carries a token of its own, never shown to the inviter: accepting with it
-- proves the invited address (the account becomes verified, as a reset link does), while the
-- token inviteMember/resendInvitation answer to the inviter does not (an inviter who registered
-- the invited address without owning it must not get it verified through their own invitation).
-- Only its hash is kept, like token_hash; null for invitations mailed before this migration.
alter table app_private.invitation_tokens add column if not exists mail_token_hash bytea;
do $$
begin
  if not exists (select 1 from pg_constraint where conname = 'invitation_tokens_mail_token_hash_key') then
    alter table app_private.invitation_tokens
      add constraint invitation_tokens_mail_token_hash_key unique (mail_token_hash);
  end if;
end;
$$;
