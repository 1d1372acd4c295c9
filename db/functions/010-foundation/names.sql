-- What a display name is (people, organizations, projects, API keys): 1 to 100 characters once
-- spaces and invisible characters are trimmed from both ends, at least one of them visible, no
-- control characters. A name of only zero-width spaces looked empty everywhere it was shown.

-- The name as stored, or INVALID_NAME naming `what` ('Organization name', 'Name', …).
create or replace function app_hidden.clean_name(value text, what text) returns text
  language plpgsql immutable
as $$
declare
  -- White space, and the format characters that show as nothing: zero-width space, joiners and
  -- marks (U+200B–U+200F), word joiner and invisible operators (U+2060–U+2064), byte-order mark
  -- (U+FEFF), soft hyphen (U+00AD), combining grapheme joiner (U+034F), Mongolian vowel
  -- separator (U+180E).
  c_invisible constant text := '[[:space:]\u200b-\u200f\u2028-\u202f\u2060-\u2064\ufeff\u00ad\u034f\u180e]';
  v_name text := regexp_replace(regexp_replace(value, '^' || c_invisible || '+', ''), c_invisible || '+$', '');
begin
  if v_name is null or length(v_name) not between 1 and 100 then
    perform app_hidden.raise_error('INVALID_NAME', what || ' must be 1 to 100 characters.');
  end if;
  if v_name ~ '[[:cntrl:]]' then
    perform app_hidden.raise_error('INVALID_NAME', what || ' must not contain control characters.');
  end if;
  if regexp_replace(v_name, c_invisible, '', 'g') = '' then
    perform app_hidden.raise_error('INVALID_NAME', what || ' must contain a visible character.');
  end if;
  return v_name;
end;
$$;
comment on function app_hidden.clean_name(text, text) is
  'A display name trimmed of spaces and invisible characters, or INVALID_NAME.';
