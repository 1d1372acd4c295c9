-- Runs first: no app role may execute anything until a domain file below grants it again.
-- (Tables are reset one by one with app_private.secure_table in each domain file.)
revoke execute on all functions in schema app_public, app_hidden from public, app_anonymous, app_user;
