-- Auto top-up (docs/billing.md, "Auto top-up"): a credit pack's price in money, the payment
-- method an organization saved for off-session charges, its one rule, and every attempt.

-- What a pack costs, so that an off-session PaymentIntent can be made for it without asking
-- Stripe (Checkout reads the price from stripe_price_id; a PaymentIntent needs an amount).
alter table app_public.credit_packages add column if not exists unit_amount bigint;
alter table app_public.credit_packages add column if not exists currency text;
alter table app_public.credit_packages drop constraint if exists credit_packages_unit_amount_check;
alter table app_public.credit_packages add constraint credit_packages_unit_amount_check
  check ((unit_amount is null and currency is null)
         or (unit_amount between 1 and 100000000 and currency ~ '^[a-z]{3}$'));
comment on column app_public.credit_packages.unit_amount is
  'Price of one pack in the currency''s smallest unit (cents); needed for auto top-up.';
comment on column app_public.credit_packages.currency is 'ISO currency code of unit_amount, lowercase.';

-- The card an admin saved through Checkout in setup mode (setup_intent.succeeded): one per
-- organization, the newest by Stripe time wins.
create table if not exists app_private.auto_top_up_payment_methods (
  organization_id uuid primary key references app_public.organizations on delete cascade,
  stripe_payment_method_id text not null,
  stripe_setup_intent_id text not null,
  stripe_customer_id text not null,
  saved_at timestamptz not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  constraint auto_top_up_payment_methods_pm_check check (stripe_payment_method_id ~ '^pm_[A-Za-z0-9_]+$')
);

-- One rule per organization: when available credits fall to or below threshold, buy
-- credit_package_id (quantity 1, or enough to reach target_balance), at most max_per_month
-- attempts and monthly_limit_amount of money per calendar month (UTC).
create table if not exists app_public.auto_top_up_rules (
  organization_id uuid primary key references app_public.organizations on delete cascade,
  enabled boolean not null default true,
  credit_package_id uuid not null references app_public.credit_packages,
  threshold bigint not null,
  target_balance bigint,
  max_per_month int not null,
  monthly_limit_amount bigint not null,
  currency text not null,
  paused_at timestamptz,
  paused_reason text,
  retry_after timestamptz,
  last_decline_code text,
  burst_alerted_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  constraint auto_top_up_rules_threshold_check check (threshold between 0 and 1000000000000),
  constraint auto_top_up_rules_target_check check (target_balance is null or target_balance between threshold + 1 and 1000000000000),
  constraint auto_top_up_rules_max_per_month_check check (max_per_month between 1 and 100),
  constraint auto_top_up_rules_monthly_limit_check check (monthly_limit_amount between 1 and 100000000000),
  constraint auto_top_up_rules_currency_check check (currency ~ '^[a-z]{3}$'),
  constraint auto_top_up_rules_paused_check check ((paused_at is null) = (paused_reason is null))
);
comment on table app_public.auto_top_up_rules is
  E'@behavior -insert -update -delete\nAuto top-up of an organization (one rule each): when available credits fall to or below threshold, buy the credit package with the saved card, within maxPerMonth and monthlyLimitAmount per calendar month (UTC). Set by admins (setAutoTopUp).';
comment on column app_public.auto_top_up_rules.monthly_limit_amount is 'Most money spent on auto top-ups per calendar month, in the currency''s smallest unit.';
comment on column app_public.auto_top_up_rules.paused_reason is 'authentication_required: the bank asked for the cardholder; nothing is charged until that payment completes or a new card is saved.';
comment on column app_public.auto_top_up_rules.retry_after is 'After a declined card, no attempt before this time.';
comment on column app_public.auto_top_up_rules.burst_alerted_at is E'@behavior -*\nWhen the admins were last told about a burst (once per 10 minutes).';
create index if not exists auto_top_up_rules_credit_package_idx on app_public.auto_top_up_rules (credit_package_id);

-- Every charge the rule started. At most one pending or processing per organization (the
-- partial unique index): concurrent spends crossing the threshold make one.
create table if not exists app_public.auto_top_up_attempts (
  organization_id uuid not null references app_public.organizations on delete cascade,
  id uuid not null default app_hidden.uuid_generate_v7(),
  status text not null default 'pending',
  credit_package_id uuid not null references app_public.credit_packages,
  quantity int not null,
  credits bigint not null,
  amount bigint not null,
  currency text not null,
  balance_before bigint not null,
  rule_max_per_month int not null,
  rule_monthly_limit_amount bigint not null,
  stripe_payment_intent_id text,
  decline_code text,
  action_url text,
  completed_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid,
  primary key (organization_id, id),
  constraint auto_top_up_attempts_status_check check (status in ('pending', 'processing', 'succeeded', 'failed', 'requires_action', 'canceled')),
  constraint auto_top_up_attempts_quantity_check check (quantity between 1 and 100),
  constraint auto_top_up_attempts_amounts_check check (credits > 0 and amount > 0 and currency ~ '^[a-z]{3}$')
);
comment on table app_public.auto_top_up_attempts is
  E'@behavior -insert -update -delete\nEach charge auto top-up made: pending (queued), processing (sent to Stripe), succeeded (credits granted), failed (declined), requires_action (the cardholder must complete it at actionUrl), canceled (auto top-up turned off first).';
comment on column app_public.auto_top_up_attempts.amount is 'In the currency''s smallest unit.';
comment on column app_public.auto_top_up_attempts.rule_max_per_month is E'@behavior -*\nThe rule''s maxPerMonth when the attempt started (the nightly check compares with it).';
comment on column app_public.auto_top_up_attempts.rule_monthly_limit_amount is E'@behavior -*\nThe rule''s monthlyLimitAmount when the attempt started.';
create unique index if not exists auto_top_up_attempts_one_open_idx on app_public.auto_top_up_attempts (organization_id)
  where status in ('pending', 'processing');
create unique index if not exists auto_top_up_attempts_payment_intent_key on app_public.auto_top_up_attempts
  (organization_id, stripe_payment_intent_id);
create index if not exists auto_top_up_attempts_organization_created_idx on app_public.auto_top_up_attempts (organization_id, created_at desc);
create index if not exists auto_top_up_attempts_credit_package_idx on app_public.auto_top_up_attempts (credit_package_id);
