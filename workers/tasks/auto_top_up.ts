// Charges one auto top-up attempt (queued by app_private.start_auto_top_up when a spend took the
// organization's available credits to or below its rule's threshold; job key
// auto-top-up:<organization id>). Creates an off-session PaymentIntent with the saved card,
// `confirm: true`, and a Stripe idempotency key derived from the attempt, so a retried job gets
// the same PaymentIntent back and never charges twice. The credits are NOT granted here: they
// come with payment_intent.succeeded through the event intake (top-up-payments.sql).
//
//   succeeded / processing      recorded as sent; the webhook grants
//   card declined               recorded with Stripe's decline code: the rule rests an hour,
//                               the admins are mailed
//   authentication_required     a Checkout page for the pack is made for the cardholder to
//                               complete the payment; the rule pauses until it succeeds, the
//                               admins are mailed the link
// Network and Stripe server errors throw: graphile-worker retries with its back-off (the same
// idempotency key).

import type { Task } from "graphile-worker";
import Stripe from "stripe";
import { loadStripeConfig } from "../../core/stripe-config.ts";
import { makeStripeClient } from "../../core/stripe-client.ts";

export const AUTO_TOP_UP_TASK = "auto_top_up";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

interface Attempt {
  organization_id: string;
  status: string;
  amount: string;
  currency: string;
  credits: string;
  quantity: number;
  stripe_customer_id: string | null;
  stripe_payment_method_id: string | null;
  stripe_price_id: string | null;
  credit_package_id: string;
}

type Outcome =
  | { outcome: "sent"; paymentIntentId: string }
  | { outcome: "declined"; paymentIntentId: string | null; declineCode: string }
  | { outcome: "authentication_required"; paymentIntentId: string | null };

export const autoTopUp: Task = async (payload, helpers) => {
  const attemptId = (payload as { attemptId?: unknown } | null)?.attemptId;
  if (typeof attemptId !== "string" || !UUID.test(attemptId)) {
    helpers.logger.error(`${AUTO_TOP_UP_TASK}: bad payload, dropped`);
    return;
  }
  const config = loadStripeConfig();
  const stripe = makeStripeClient(config);
  if (stripe === null) {
    // Retried with back-off: billing may be configured by the next try.
    throw new Error("billing is not configured (STRIPE_SECRET_KEY): auto top-up cannot charge");
  }
  const { rows } = await helpers.withPgClient((client) =>
    client.query<Attempt>("select * from app_private.begin_auto_top_up_attempt($1)", [attemptId]),
  );
  const attempt = rows[0];
  if (!attempt || attempt.status !== "processing") {
    helpers.logger.info(`${AUTO_TOP_UP_TASK}: attempt ${attemptId} is ${attempt?.status ?? "gone"}; nothing to charge`);
    return;
  }
  const metadata = { organization_id: attempt.organization_id, auto_top_up_attempt_id: attemptId };

  let result: Outcome;
  try {
    const intent = await stripe.paymentIntents.create(
      {
        amount: Number(attempt.amount),
        currency: attempt.currency,
        customer: attempt.stripe_customer_id!,
        payment_method: attempt.stripe_payment_method_id!,
        off_session: true,
        confirm: true,
        description: `Auto top-up: ${attempt.credits} credits`,
        metadata,
      },
      { idempotencyKey: `tenantbase-auto-top-up-${attemptId}` },
    );
    if (intent.status === "succeeded" || intent.status === "processing") {
      result = { outcome: "sent", paymentIntentId: intent.id };
    } else if (intent.status === "requires_action" || intent.status === "requires_confirmation") {
      result = { outcome: "authentication_required", paymentIntentId: intent.id };
    } else {
      const error = intent.last_payment_error;
      result = { outcome: "declined", paymentIntentId: intent.id, declineCode: error?.decline_code ?? error?.code ?? intent.status };
    }
  } catch (error) {
    if (!(error instanceof Stripe.errors.StripeCardError)) throw error;
    const paymentIntentId = error.payment_intent?.id ?? null;
    result =
      error.code === "authentication_required"
        ? { outcome: "authentication_required", paymentIntentId }
        : { outcome: "declined", paymentIntentId, declineCode: error.decline_code || error.code || "card_declined" };
  }

  let actionUrl: string | null = null;
  if (result.outcome === "authentication_required") {
    // The cardholder completes the payment on a Checkout page for the pack (its credits come with
    // checkout.session.completed; its PaymentIntent names the attempt, which resumes the rule).
    const session = await stripe.checkout.sessions.create(
      {
        mode: "payment",
        customer: attempt.stripe_customer_id!,
        client_reference_id: attempt.organization_id,
        line_items: [{ price: attempt.stripe_price_id!, quantity: 1 }],
        success_url: config.checkoutSuccessUrl,
        cancel_url: config.checkoutCancelUrl,
        metadata: { ...metadata, credit_package_id: attempt.credit_package_id },
        payment_intent_data: { metadata: { ...metadata, credit_package_id: attempt.credit_package_id }, setup_future_usage: "off_session" },
      },
      { idempotencyKey: `tenantbase-auto-top-up-action-${attemptId}` },
    );
    actionUrl = session.url;
  }

  const { rows: recorded } = await helpers.withPgClient((client) =>
    client.query<{ status: string }>("select app_private.record_auto_top_up_result($1, $2, $3, $4, $5) as status", [
      attemptId,
      result.outcome,
      result.paymentIntentId,
      result.outcome === "declined" ? result.declineCode : null,
      actionUrl,
    ]),
  );
  helpers.logger.info(`${AUTO_TOP_UP_TASK}: attempt ${attemptId} ${result.outcome}; now ${recorded[0].status}`);
};
