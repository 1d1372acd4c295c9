// The subscription fields. Each one listen()s (Grafast's step) on the connection's RealtimeSession
// (session.ts), which authorises the subscription in SQL; the process's hub (hub.ts) checks
// every event for all its subscribers at once before passing it on.
// - `generation` is the row as the change left it, carried by the notification (issue 20,
//   item 9: a generation that completes 100 ms after starting is told `running`, then
//   `succeeded`, never `succeeded` twice). It is served from that record (no table read), and
//   only within the subscribed organization; its relations are read under RLS.
// - The other fields read the rows now with PostGraphile's own resources under the subscriber's
//   settings, so RLS decides what each subscriber sees. The reads of one event's subscribers
//   share one transaction (delivery.ts): the plugin below hands realtime operations that
//   withPgClient instead of the request path's.

import { extendSchema } from "postgraphile/utils";
import { pgSelect, TYPES } from "postgraphile/@dataplan/pg";
import { sql } from "postgraphile/pg-sql2";
import { access, constant, context, lambda, listen, type Step } from "postgraphile/grafast";
import type { DeliveryReads } from "./delivery.ts";
import { encodeRequest, type RealtimeKind, type RealtimeSession } from "./session.ts";

declare global {
  namespace Grafast {
    interface Context {
      /** Set for operations on an authenticated websocket (server/realtime/websockets.ts). */
      realtime?: RealtimeSession;
      /** The event reads' withPgClient (delivery.ts), swapped in for realtime operations. */
      realtimeWithPgClient?: DeliveryReads["withPgClient"];
    }
  }
}

function subscribePlan(kind: RealtimeKind) {
  return (_$root: Step, fieldArgs: any) => {
    const $request = lambda(
      { organizationId: fieldArgs.getRaw("organizationId"), projectId: kind === "generations" ? fieldArgs.getRaw("projectId") : constant(null) },
      ({ organizationId, projectId }) =>
        encodeRequest({ kind, organizationId: organizationId as string, projectId: (projectId as string | null) ?? null }),
    );
    // The first message, sent once the LISTEN is in place: the subscription is live, and
    // nothing committed after the client received it will be missed.
    const $initial = lambda(fieldArgs.getRaw("organizationId"), (organizationId) => ({ initial: true, organization_id: organizationId }));
    return listen(context().get("realtime") as any, $request as any, ($event: any) => $event, $initial as any);
  };
}

/**
 * The row a notification carried (PostgreSQL's record text of `resource`), as a PostGraphile
 * record: no table is read, and a row of another organization than the subscribed one (only a
 * forged notification could carry one) is no row. No `row` (the first message): null.
 */
function rowVersion(resource: any, $event: Step) {
  const $row = access($event, "row");
  const $organization = access($event, "organization_id");
  return pgSelect({
    resource,
    identifiers: [],
    from: {
      callback: ($select: any) =>
        sql`(select (r.v).* from (select ${$select.placeholder($row, TYPES.text)}::${resource.codec.sqlType} as v) r where (r.v).organization_id = ${$select.placeholder($organization, TYPES.uuid)})`,
    },
    joinAsLateral: true,
  }).single();
}

const RealtimeSchemaPlugin = extendSchema((build) => {
  const { generations, credit_accounts, organizations, organization_members, invitations, credit_alerts } = build.input.pgRegistry
    .pgResources as Record<string, any>;
  const orgOf = ($event: Step) => access($event, "organization_id");
  const initialOf = ($event: Step) => lambda(access($event, "initial"), (initial) => initial === true);
  return {
    typeDefs: /* GraphQL */ `
      "A generation started or changed (status, credits charged, result metadata)."
      type GenerationUpdate {
        "True on the first message, sent once the subscription is live (generationId is null then)."
        initial: Boolean!
        generationId: UUID
        "The generation as this change left it (its relations, such as project, are read at delivery); a row too large for NOTIFY is read at delivery instead."
        generation: Generation
        "The organization's credits after the change."
        creditAccount: CreditAccount
      }
      "The organization's credits changed."
      type CreditAccountUpdate {
        "True on the first message (the balance now), sent once the subscription is live."
        initial: Boolean!
        organizationId: UUID!
        creditAccount: CreditAccount
      }
      enum OrganizationEventKind {
        "The first message, sent once the subscription is live."
        SUBSCRIBED
        MEMBER_JOINED
        MEMBER_LEFT
        MEMBER_ROLE_CHANGED
        INVITATION_CREATED
        "Accepted, revoked, expired or resent: read invitation.status."
        INVITATION_UPDATED
        "The plan changed, directly or through the Stripe subscription."
        PLAN_CHANGED
        "Renamed, deleted or restored."
        ORGANIZATION_UPDATED
        "A credit alert fired (low balance, a spend cap used to a threshold, credits about to expire): read creditAlert."
        CREDIT_ALERT
      }
      "Something an admin dashboard refreshes on."
      type OrganizationEvent {
        kind: OrganizationEventKind!
        organizationId: UUID!
        "The member concerned (MEMBER_* events)."
        userId: UUID
        "The invitation concerned (INVITATION_* events)."
        invitationId: UUID
        organization: Organization
        "The membership now (null once the member has left)."
        member: OrganizationMember
        "The invitation now (visible to admins and owners)."
        invitation: Invitation
        "The credit alert concerned (CREDIT_ALERT events)."
        creditAlertId: UUID
        "The credit alert that fired (CREDIT_ALERT events)."
        creditAlert: CreditAlert
      }
      extend type Subscription {
        """
        Generations of an organization (or of one of its projects) as they start, succeed or
        fail. Over a websocket authenticated in connection_init; members only.
        """
        generationUpdated(organizationId: UUID!, projectId: UUID): GenerationUpdate
        "The organization's credit account (available, reserved) whenever it changes. Members only."
        creditAccountUpdated(organizationId: UUID!): CreditAccountUpdate
        "Members joining, leaving or changing role, invitations, plan and organization changes. Members only."
        organizationEvents(organizationId: UUID!): OrganizationEvent
      }
    `,
    objects: {
      Subscription: {
        plans: {
          generationUpdated: { subscribePlan: subscribePlan("generations"), plan: ($event: Step) => $event },
          creditAccountUpdated: { subscribePlan: subscribePlan("credits"), plan: ($event: Step) => $event },
          organizationEvents: { subscribePlan: subscribePlan("organization"), plan: ($event: Step) => $event },
        },
      },
      GenerationUpdate: {
        plans: {
          initial: ($event: Step) => initialOf($event),
          generationId: ($event: Step) => access($event, "id"),
          generation: ($event: Step) => rowVersion(generations, $event),
          creditAccount: ($event: Step) => credit_accounts.get({ organization_id: orgOf($event) }),
        },
      },
      CreditAccountUpdate: {
        plans: {
          initial: ($event: Step) => initialOf($event),
          organizationId: ($event: Step) => orgOf($event),
          creditAccount: ($event: Step) => credit_accounts.get({ organization_id: orgOf($event) }),
        },
      },
      OrganizationEvent: {
        plans: {
          kind: ($event: Step) => lambda(access($event, "kind"), (kind) => (kind == null ? "SUBSCRIBED" : String(kind).toUpperCase())),
          organizationId: ($event: Step) => orgOf($event),
          userId: ($event: Step) => access($event, "user_id"),
          invitationId: ($event: Step) => access($event, "invitation_id"),
          organization: ($event: Step) => organizations.get({ id: orgOf($event) }),
          member: ($event: Step) => organization_members.get({ organization_id: orgOf($event), user_id: access($event, "user_id") }),
          invitation: ($event: Step) => invitations.get({ organization_id: orgOf($event), id: access($event, "invitation_id") }),
          creditAlertId: ($event: Step) => access($event, "credit_alert_id"),
          creditAlert: ($event: Step) => credit_alerts.get({ organization_id: orgOf($event), id: access($event, "credit_alert_id") }),
        },
      },
    },
  };
});

/**
 * The schema above, plus: operations on a websocket read through the event reads' withPgClient
 * (one transaction per event for all its subscribers) instead of one transaction each.
 */
export const RealtimePlugin: GraphileConfig.Plugin = {
  ...RealtimeSchemaPlugin,
  grafast: {
    middleware: {
      async prepareArgs(next) {
        const args = await next();
        const context = args.contextValue as Grafast.Context & { withPgClient?: unknown };
        if (context?.realtime && context.realtimeWithPgClient) context.withPgClient = context.realtimeWithPgClient;
        return args;
      },
    },
  },
};
