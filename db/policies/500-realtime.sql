-- Realtime: no table of its own. Every role whose statement can fire a notifying trigger needs
-- the channel name; subscribers (app_user, a user or an API key) ask whether they may follow an
-- organization as themselves.

grant execute on function app_hidden.realtime_topic(text, uuid) to app_anonymous, app_user;

grant execute on function
  app_hidden.realtime_subscriber_status(uuid),
  app_hidden.realtime_subscribe(text, uuid, uuid)
to app_user;

grant execute on function
  app_hidden.realtime_organization_limits(uuid),
  app_hidden.realtime_follow(text, uuid, uuid)
to app_user;
