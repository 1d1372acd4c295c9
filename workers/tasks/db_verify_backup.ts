// db_verify_backup (crontab, BACKUP_VERIFY_CRON, default weekly): the restore test. Restores the
// newest backup into a scratch database, compares per-table row counts and the credit tables'
// sums with the manifest taken in the dump's snapshot, drops the scratch database, and records
// the result (app_private.backup_runs + the backup_verification check). A failure is logged as
// an error and shows in /readyz and /metrics; the job itself succeeds so it is not retried
// against the same broken file.

import type { Task } from "graphile-worker";
import { recordBackupRun, verifyBackup } from "../../db/backup.ts";
import { operationsContext } from "../operations.ts";

export const DB_VERIFY_BACKUP_TASK = "db_verify_backup";

export const dbVerifyBackup: Task = async () => {
  const ctx = operationsContext();
  const startedAt = new Date();
  const result = await verifyBackup({
    ownerUrl: ctx.ownerUrl,
    rootUrl: ctx.rootUrl,
    backupDir: ctx.backupDir,
    retentionDays: ctx.backupRetentionDays,
    pgBinDir: ctx.pgBinDir,
  });
  const details = {
    tables: result.tables,
    rows: result.rows,
    mismatches: result.mismatches.slice(0, 50),
    durationMs: result.durationMs,
    ...(result.error ? { error: result.error } : {}),
  };
  if (result.ok) ctx.logger.info({ file: result.file, ...details }, "backup verified: restore matches the snapshot");
  else ctx.logger.error({ file: result.file, ...details }, "backup verification FAILED");
  await recordBackupRun(ctx.ownerUrl, "verify", { file: result.file, ok: result.ok, details, startedAt });
};
