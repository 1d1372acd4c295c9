// createCheckoutSession, createBillingPortalSession and createAutoTopUpSetupSession: the
// mutations that call Stripe.
//
// Who may do what is decided in SQL, as the caller (app_hidden.checkout_target,
// set_stripe_customer, billing_portal_customer raise NOT_FOUND / FORBIDDEN / … through
// app_hidden.raise_error), in short transactions of their own: no database connection or
// transaction is held open while Stripe answers. Stripe failures reach the client as
// PAYMENT_PROVIDER_ERROR; with billing off, BILLING_NOT_CONFIGURED once the caller is known to
// be allowed (FORBIDDEN / NOT_FOUND come first), even where the database would have said
// NOT_PURCHASABLE or NO_BILLING_ACCOUNT: without Stripe nothing is purchasable, and the
// configuration is the thing to fix.

import type pg from "pg";
import type Stripe from "stripe";
import { extendSchema } from "postgraphile/utils";
import { context, get, sideEffect } from "postgraphile/grafast";
import { BUSINESS_ERROR_SQLSTATE } from "../errors.ts";
import { loadStripeConfig, type StripeConfig } from "../../core/stripe-config.ts";
import { makeStripeClient } from "./client.ts";
import { rootLogger } from "../../core/logger.ts";
import { withSettings } from "../../db/transaction.ts";

/** Shaped like a business error raised in SQL, so server/errors.ts passes its code through. */
export class BillingError extends Error {
  readonly code = BUSINESS_ERROR_SQLSTATE;
  readonly detail: string;
  constructor(code: string, message: string) {
    super(message);
    this.detail = code;
  }
}

export interface BillingPluginOptions {
  /** app_authenticator connections; each SQL step runs as the caller (their pgSettings). */
  pool: pg.Pool;
  /** Default: loadStripeConfig() from the environment. */
  config?: StripeConfig;
}

type PgSettings = Record<string, string | undefined>;

function asCaller<T>(pool: pg.Pool, pgSettings: PgSettings, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  return withSettings(pool, pgSettings ?? {}, fn);
}

const NOT_CONFIGURED_MESSAGE = "Billing is not configured on this server (STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET).";
/** Codes that only say "Stripe has nothing for this yet": with billing off, the answer is that. */
const STRIPE_DEPENDENT = new Set(["NOT_PURCHASABLE", "NO_BILLING_ACCOUNT"]);

/** Runs the caller's checks; with billing off, anything past them is BILLING_NOT_CONFIGURED. */
async function checkedAsCaller<T>(
  stripe: Stripe | null,
  pool: pg.Pool,
  pgSettings: PgSettings,
  fn: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  let result: T;
  try {
    result = await asCaller(pool, pgSettings, fn);
  } catch (error) {
    const { code, detail } = error as { code?: unknown; detail?: unknown };
    if (stripe === null && code === BUSINESS_ERROR_SQLSTATE && typeof detail === "string" && STRIPE_DEPENDENT.has(detail)) {
      throw new BillingError("BILLING_NOT_CONFIGURED", NOT_CONFIGURED_MESSAGE);
    }
    throw error;
  }
  if (stripe === null) throw new BillingError("BILLING_NOT_CONFIGURED", NOT_CONFIGURED_MESSAGE);
  return result;
}

async function callStripe<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    rootLogger().error({ call: what, reason: message }, "billing: Stripe call failed");
    throw new BillingError("PAYMENT_PROVIDER_ERROR", "The payment provider could not be reached; try again.");
  }
}

/** The organization's Stripe customer: the stored one, or one created now and stored. */
async function ensureCustomer(
  pool: pg.Pool,
  stripe: Stripe,
  pgSettings: PgSettings,
  organizationId: string,
  target: { stripe_customer_id: string | null; organization_name: string; customer_email: string | null },
): Promise<string> {
  if (target.stripe_customer_id !== null) return target.stripe_customer_id;
  // The idempotency key makes two racing first checkouts get the same customer from Stripe;
  // set_stripe_customer keeps the first one stored either way.
  const customer = await callStripe("customers.create", () =>
    stripe.customers.create(
      {
        name: target.organization_name,
        ...(target.customer_email ? { email: target.customer_email } : {}),
        metadata: { organization_id: organizationId },
      },
      { idempotencyKey: `tenantbase-customer-${organizationId}` },
    ),
  );
  return asCaller(pool, pgSettings, async (client) => {
    const { rows } = await client.query("select app_hidden.set_stripe_customer($1, $2) as id", [organizationId, customer.id]);
    return rows[0].id as string;
  });
}

interface CheckoutInput {
  organizationId: string;
  creditPackageId?: string | null;
  planId?: string | null;
  saveCardForAutoTopUp?: boolean | null;
}

interface CheckoutTarget {
  mode: "payment" | "subscription";
  stripe_price_id: string;
  stripe_customer_id: string | null;
  organization_name: string;
  customer_email: string | null;
}

export async function createCheckoutSession(
  pool: pg.Pool,
  stripe: Stripe | null,
  config: StripeConfig,
  pgSettings: PgSettings,
  input: CheckoutInput,
): Promise<{ url: string; sessionId: string }> {
  const organizationId = input.organizationId;
  const target = await checkedAsCaller(stripe, pool, pgSettings, async (client) => {
    const { rows } = await client.query<CheckoutTarget>("select * from app_hidden.checkout_target($1, $2, $3)", [
      organizationId,
      input.creditPackageId ?? null,
      input.planId ?? null,
    ]);
    return rows[0];
  });
  if (stripe === null) throw new BillingError("BILLING_NOT_CONFIGURED", NOT_CONFIGURED_MESSAGE); // (checked above; narrows the type)

  const customerId = await ensureCustomer(pool, stripe, pgSettings, organizationId, target);

  const metadata: Record<string, string> =
    target.mode === "payment"
      ? { organization_id: organizationId, credit_package_id: input.creditPackageId! }
      : { organization_id: organizationId, plan_id: input.planId! };
  const session = await callStripe("checkout.sessions.create", () =>
    stripe.checkout.sessions.create({
      mode: target.mode,
      customer: customerId!,
      client_reference_id: organizationId,
      line_items: [{ price: target.stripe_price_id, quantity: 1 }],
      success_url: config.checkoutSuccessUrl,
      cancel_url: config.checkoutCancelUrl,
      metadata,
      ...(target.mode === "subscription"
        ? { subscription_data: { metadata: { organization_id: organizationId, plan_id: input.planId! } } }
        : {
            payment_intent_data: {
              metadata,
              // The card paying for the pack is kept for auto top-up (payment_intent.succeeded stores it).
              ...(input.saveCardForAutoTopUp ? { setup_future_usage: "off_session" as const } : {}),
            },
          }),
    }),
  );
  if (!session.url) throw new BillingError("PAYMENT_PROVIDER_ERROR", "The payment provider returned no checkout URL.");
  return { url: session.url, sessionId: session.id };
}

export async function createBillingPortalSession(
  pool: pg.Pool,
  stripe: Stripe | null,
  config: StripeConfig,
  pgSettings: PgSettings,
  input: { organizationId: string },
): Promise<{ url: string }> {
  const customerId = await checkedAsCaller(stripe, pool, pgSettings, async (client) => {
    const { rows } = await client.query("select app_hidden.billing_portal_customer($1) as id", [input.organizationId]);
    return rows[0].id as string;
  });
  if (stripe === null) throw new BillingError("BILLING_NOT_CONFIGURED", NOT_CONFIGURED_MESSAGE); // (checked above; narrows the type)
  const session = await callStripe("billingPortal.sessions.create", () =>
    stripe.billingPortal.sessions.create({ customer: customerId, return_url: config.portalReturnUrl }),
  );
  return { url: session.url };
}

/**
 * Checkout in setup mode: the admin saves a card for auto top-up's off-session payments. Stripe
 * then sends setup_intent.succeeded (its metadata names the organization; the event job checks
 * it against the customer), which stores the card (db/functions/310-auto-top-up).
 */
export async function createAutoTopUpSetupSession(
  pool: pg.Pool,
  stripe: Stripe | null,
  config: StripeConfig,
  pgSettings: PgSettings,
  input: { organizationId: string },
): Promise<{ url: string; sessionId: string }> {
  const organizationId = input.organizationId;
  const target = await checkedAsCaller(stripe, pool, pgSettings, async (client) => {
    const { rows } = await client.query("select * from app_hidden.auto_top_up_setup_target($1)", [organizationId]);
    return rows[0] as { stripe_customer_id: string | null; organization_name: string; customer_email: string | null };
  });
  if (stripe === null) throw new BillingError("BILLING_NOT_CONFIGURED", NOT_CONFIGURED_MESSAGE); // (checked above; narrows the type)
  const customerId = await ensureCustomer(pool, stripe, pgSettings, organizationId, target);
  const metadata = { organization_id: organizationId, purpose: "auto_top_up" };
  const session = await callStripe("checkout.sessions.create", () =>
    stripe.checkout.sessions.create({
      mode: "setup",
      customer: customerId,
      client_reference_id: organizationId,
      allowed_payment_method_types: ["card"],
      success_url: config.checkoutSuccessUrl,
      cancel_url: config.checkoutCancelUrl,
      metadata,
      setup_intent_data: { metadata, description: "Card for automatic credit top-ups" },
    }),
  );
  if (!session.url) throw new BillingError("PAYMENT_PROVIDER_ERROR", "The payment provider returned no checkout URL.");
  return { url: session.url, sessionId: session.id };
}

export function makeBillingPlugin(options: BillingPluginOptions): GraphileConfig.Plugin {
  const config = options.config ?? loadStripeConfig();
  const stripe = makeStripeClient(config);
  const { pool } = options;
  return extendSchema(() => ({
    typeDefs: /* GraphQL */ `
      input CreateCheckoutSessionInput {
        clientMutationId: String
        organizationId: UUID!
        "A credit package to buy once (give this or planId)."
        creditPackageId: UUID
        "A plan to subscribe to (give this or creditPackageId)."
        planId: String
        "With creditPackageId: keep the card for auto top-up's automatic payments."
        saveCardForAutoTopUp: Boolean
      }
      type CreateCheckoutSessionPayload {
        clientMutationId: String
        "Stripe Checkout page to send the user to."
        url: String!
        sessionId: String!
      }
      input CreateBillingPortalSessionInput {
        clientMutationId: String
        organizationId: UUID!
      }
      type CreateBillingPortalSessionPayload {
        clientMutationId: String
        "Stripe billing portal page (invoices, payment methods, plan changes, cancellation)."
        url: String!
      }
      input CreateAutoTopUpSetupSessionInput {
        clientMutationId: String
        organizationId: UUID!
      }
      type CreateAutoTopUpSetupSessionPayload {
        clientMutationId: String
        "Stripe Checkout page (setup mode) where an admin saves a card for auto top-up."
        url: String!
        sessionId: String!
      }
      extend type Mutation {
        "Starts a Stripe Checkout in setup mode to save a card for auto top-up (admins and owners)."
        createAutoTopUpSetupSession(input: CreateAutoTopUpSetupSessionInput!): CreateAutoTopUpSetupSessionPayload
        "Starts a Stripe Checkout for a credit package or a plan (admins and owners)."
        createCheckoutSession(input: CreateCheckoutSessionInput!): CreateCheckoutSessionPayload
        "Opens the Stripe billing portal of the organization (admins and owners)."
        createBillingPortalSession(input: CreateBillingPortalSessionInput!): CreateBillingPortalSessionPayload
      }
    `,
    objects: {
      Mutation: {
        plans: {
          createCheckoutSession(_$root, fieldArgs) {
            const $input = fieldArgs.getRaw("input");
            const $pgSettings = context().get("pgSettings");
            return sideEffect([$input, $pgSettings], async ([input, pgSettings]) => {
              const result = await createCheckoutSession(pool, stripe, config, pgSettings as PgSettings, input as CheckoutInput);
              return { ...result, clientMutationId: (input as { clientMutationId?: string }).clientMutationId ?? null };
            });
          },
          createAutoTopUpSetupSession(_$root, fieldArgs) {
            const $input = fieldArgs.getRaw("input");
            const $pgSettings = context().get("pgSettings");
            return sideEffect([$input, $pgSettings], async ([input, pgSettings]) => {
              const result = await createAutoTopUpSetupSession(pool, stripe, config, pgSettings as PgSettings, input as { organizationId: string });
              return { ...result, clientMutationId: (input as { clientMutationId?: string }).clientMutationId ?? null };
            });
          },
          createBillingPortalSession(_$root, fieldArgs) {
            const $input = fieldArgs.getRaw("input");
            const $pgSettings = context().get("pgSettings");
            return sideEffect([$input, $pgSettings], async ([input, pgSettings]) => {
              const result = await createBillingPortalSession(pool, stripe, config, pgSettings as PgSettings, input as { organizationId: string });
              return { ...result, clientMutationId: (input as { clientMutationId?: string }).clientMutationId ?? null };
            });
          },
        },
      },
      CreateCheckoutSessionPayload: {
        plans: {
          clientMutationId: ($p: any) => get($p, "clientMutationId"),
          url: ($p: any) => get($p, "url"),
          sessionId: ($p: any) => get($p, "sessionId"),
        },
      },
      CreateAutoTopUpSetupSessionPayload: {
        plans: {
          clientMutationId: ($p: any) => get($p, "clientMutationId"),
          url: ($p: any) => get($p, "url"),
          sessionId: ($p: any) => get($p, "sessionId"),
        },
      },
      CreateBillingPortalSessionPayload: {
        plans: {
          clientMutationId: ($p: any) => get($p, "clientMutationId"),
          url: ($p: any) => get($p, "url"),
        },
      },
    },
  }));
}
