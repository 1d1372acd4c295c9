// The subscription fields. Each one listen()s (Grafast's step) on the connection's RealtimeSession
// (session.ts), which authorises the subscription in SQL and checks every event before passing
// it on; the event carries ids, and the fields below read the rows with PostGraphile's own
// resources under the subscriber's settings, so RLS decides what each subscriber sees.

import { extendSchema } from "postgraphile/utils";
import { access, constant, context, lambda, listen, type Step } from "postgraphile/grafast";
import { encodeRequest, type RealtimeKind, type RealtimeSession } from "./session.ts";

declare global {
  namespace Grafast {
    interface Context {
      /** Set for operations on an authenticated websocket (server/realtime/websockets.ts). */
      realtime?: RealtimeSession;
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

export const RealtimePlugin = extendSchema((build) => {
  const { generations, credit_accounts, organizations, organization_members, invitations } = build.input.pgRegistry
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
        "The generation as the subscriber may see it now."
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
          generation: ($event: Step) => generations.get({ organization_id: orgOf($event), id: access($event, "id") }),
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
        },
      },
    },
  };
});
