// Relation names a client developer reads. PostGraphile names a relation from its foreign key's
// columns; with tenant-scoped composite keys, (organization_id, project_id), that gives
// `organizationProject` and `generationsByOrganizationIdAndProjectId`, and a user column not
// ending in _id gives `userByInvitedBy`. Smart tags on the constraints rename each side:
// `fieldName` for the row's own field, `foreignFieldName` for the list on the other side.
// Kept here, in TypeScript, rather than as comments in committed migrations. Constraint names are
// PostgreSQL's (db/migrations/committed/); a renamed constraint shows up in the schema drift test.
//
// Root lookups by a tenant-scoped unique key, (organization_id, idempotency_key), are named
// likewise: `generationByIdempotencyKey(organizationId, idempotencyKey)`, not
// `generationByOrganizationIdAndIdempotencyKey` (a `fieldName` tag on the unique constraint).

import { jsonPgSmartTags } from "postgraphile/utils";

type Names = { fieldName: string; foreignFieldName?: string };
const relations: Record<string, Record<string, Names>> = {
  "app_public.generations": {
    generations_project_fkey: { fieldName: "project", foreignFieldName: "generations" },
    generations_reservation_fkey: { fieldName: "reservation", foreignFieldName: "generations" },
    generations_idempotency_key: { fieldName: "generationByIdempotencyKey" },
  },
  "app_public.credit_ledger": {
    credit_ledger_reservation_fkey: { fieldName: "reservation", foreignFieldName: "ledgerEntries" },
    credit_ledger_idempotency_key: { fieldName: "creditLedgerEntryByIdempotencyKey" },
    credit_ledger_system_key: { fieldName: "creditLedgerEntryBySystemKey" },
  },
  "app_public.credit_reservations": {
    credit_reservations_idempotency_key: { fieldName: "creditReservationByIdempotencyKey" },
    credit_reservations_system_key: { fieldName: "creditReservationBySystemKey" },
    // The key that made the reservation; ApiKey has no list of reservations (none is exposed).
    credit_reservations_api_key_fkey: { fieldName: "apiKey" },
  },
  "app_public.credit_ledger_allocations": {
    credit_ledger_allocations_ledger_entry_fkey: { fieldName: "ledgerEntry", foreignFieldName: "grantAllocations" },
    credit_ledger_allocations_grant_fkey: { fieldName: "grant", foreignFieldName: "ledgerAllocations" },
  },
  // No list on the other side: Project and ApiKey have no `creditSpendCaps` field in the schema
  // (caps are read through Organization.creditSpendCaps or the root query).
  "app_public.credit_spend_caps": {
    credit_spend_caps_project_fkey: { fieldName: "project" },
    credit_spend_caps_api_key_fkey: { fieldName: "apiKey" },
  },
  // Usage alerts (db/functions/140-credit-controls): a threshold's cap; an alert's threshold, cap
  // and grant. A threshold lists the alerts it fired; a cap lists its thresholds.
  "app_public.credit_alert_thresholds": {
    credit_alert_thresholds_cap_fkey: { fieldName: "cap", foreignFieldName: "alertThresholds" },
  },
  "app_public.credit_alerts": {
    credit_alerts_threshold_fkey: { fieldName: "threshold", foreignFieldName: "alerts" },
    credit_alerts_cap_fkey: { fieldName: "cap", foreignFieldName: "alerts" },
    credit_alerts_grant_fkey: { fieldName: "grant", foreignFieldName: "alerts" },
  },
  "app_public.invitations": {
    invitations_invited_by_fkey: { fieldName: "invitedByUser", foreignFieldName: "sentInvitations" },
    invitations_accepted_by_fkey: { fieldName: "acceptedByUser", foreignFieldName: "acceptedInvitations" },
  },
  "app_public.organization_members": {
    organization_members_invited_by_fkey: { fieldName: "invitedByUser", foreignFieldName: "invitedMemberships" },
  },
  "app_public.api_keys": {
    api_keys_revoked_by_fkey: { fieldName: "revokedByUser", foreignFieldName: "revokedApiKeys" },
  },
};

export const RelationNamesPlugin = jsonPgSmartTags({
  version: 1,
  config: {
    class: Object.fromEntries(
      Object.entries(relations).map(([table, constraints]) => [
        table,
        { constraint: Object.fromEntries(Object.entries(constraints).map(([name, tags]) => [name, { tags }])) },
      ]),
    ),
  },
});
