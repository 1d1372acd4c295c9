// Every task the worker runs, by identifier. One file per task in this folder; add yours here.
// Tasks must be safe to run twice (jobs can be retried after a crash), and jobs that could be
// queued twice carry a job_key.

import type { TaskList } from "graphile-worker";
import { dbBackup, DB_BACKUP_TASK } from "./db_backup.ts";
import { dbVerifyBackup, DB_VERIFY_BACKUP_TASK } from "./db_verify_backup.ts";
import { slowQueryReport, SLOW_QUERY_REPORT_TASK } from "./slow_query_report.ts";
import { stripeEvent, STRIPE_EVENT_TASK } from "./stripe_event.ts";
import { stripeEvents, STRIPE_EVENTS_TASK } from "./stripe_events.ts";
import { sendInvitationEmail, SEND_INVITATION_EMAIL_TASK } from "./send_invitation_email.ts";
import { expireInvitations, EXPIRE_INVITATIONS_TASK } from "./expire_invitations.ts";
import { hardDeleteOrganizations, HARD_DELETE_ORGANIZATIONS_TASK } from "./hard_delete_organizations.ts";
import { pruneAuditEvents, PRUNE_AUDIT_EVENTS_TASK } from "./prune_audit_events.ts";
import { expireCreditReservation, EXPIRE_CREDIT_RESERVATION_TASK } from "./expire_credit_reservation.ts";
import { expireCreditGrants, EXPIRE_CREDIT_GRANTS_TASK } from "./expire_credit_grants.ts";
import { rolloverUsagePeriods, ROLLOVER_USAGE_PERIODS_TASK } from "./rollover_usage_periods.ts";
import { verifyCreditLedger, VERIFY_CREDIT_LEDGER_TASK } from "./verify_credit_ledger.ts";
import { sendAccountEmail, SEND_ACCOUNT_EMAIL_TASK } from "./send_account_email.ts";
import { pruneAccountRecords, PRUNE_ACCOUNT_RECORDS_TASK } from "./prune_account_records.ts";
import { sendCreditAlertEmail, SEND_CREDIT_ALERT_EMAIL_TASK } from "./send_credit_alert_email.ts";
import { noticeExpiringCreditGrants, NOTICE_EXPIRING_CREDIT_GRANTS_TASK } from "./notice_expiring_credit_grants.ts";
import { autoTopUp, AUTO_TOP_UP_TASK } from "./auto_top_up.ts";
import { sendAutoTopUpEmail, SEND_AUTO_TOP_UP_EMAIL_TASK } from "./send_auto_top_up_email.ts";
import { deliverWebhook, DELIVER_WEBHOOK_TASK } from "./deliver_webhook.ts";
import { pruneWebhookMessages, PRUNE_WEBHOOK_MESSAGES_TASK } from "./prune_webhook_messages.ts";
import { webhookEndpointDisabledEmail, WEBHOOK_ENDPOINT_DISABLED_EMAIL_TASK } from "./webhook_endpoint_disabled_email.ts";

export const taskList: TaskList = {
  [DB_BACKUP_TASK]: dbBackup,
  [DB_VERIFY_BACKUP_TASK]: dbVerifyBackup,
  [SLOW_QUERY_REPORT_TASK]: slowQueryReport,
  [STRIPE_EVENT_TASK]: stripeEvent,
  [STRIPE_EVENTS_TASK]: stripeEvents,
  [SEND_INVITATION_EMAIL_TASK]: sendInvitationEmail,
  [EXPIRE_INVITATIONS_TASK]: expireInvitations,
  [HARD_DELETE_ORGANIZATIONS_TASK]: hardDeleteOrganizations,
  [PRUNE_AUDIT_EVENTS_TASK]: pruneAuditEvents,
  [EXPIRE_CREDIT_RESERVATION_TASK]: expireCreditReservation,
  [EXPIRE_CREDIT_GRANTS_TASK]: expireCreditGrants,
  [ROLLOVER_USAGE_PERIODS_TASK]: rolloverUsagePeriods,
  [VERIFY_CREDIT_LEDGER_TASK]: verifyCreditLedger,
  [SEND_ACCOUNT_EMAIL_TASK]: sendAccountEmail,
  [PRUNE_ACCOUNT_RECORDS_TASK]: pruneAccountRecords,
  [SEND_CREDIT_ALERT_EMAIL_TASK]: sendCreditAlertEmail,
  [NOTICE_EXPIRING_CREDIT_GRANTS_TASK]: noticeExpiringCreditGrants,
  [AUTO_TOP_UP_TASK]: autoTopUp,
  [SEND_AUTO_TOP_UP_EMAIL_TASK]: sendAutoTopUpEmail,
  [DELIVER_WEBHOOK_TASK]: deliverWebhook,
  [PRUNE_WEBHOOK_MESSAGES_TASK]: pruneWebhookMessages,
  [WEBHOOK_ENDPOINT_DISABLED_EMAIL_TASK]: webhookEndpointDisabledEmail,
};
