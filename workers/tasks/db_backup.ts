// db_backup (crontab, BACKUP_CRON, default every 6 hours): pg_dump of the live database into
// BACKUP_DIR with its manifest, then prunes backups older than BACKUP_RETENTION_DAYS. The
// outcome is recorded in app_private.backup_runs (/readyz, /metrics). Safe to run twice: each
// run writes its own file.

import type { Task } from "graphile-worker";
import { createBackup, recordBackupRun } from "../../db/backup.ts";
import { operationsContext } from "../operations.ts";

export const DB_BACKUP_TASK = "db_backup";

export const dbBackup: Task = async () => {
  const ctx = operationsContext();
  const startedAt = new Date();
  try {
    const result = await createBackup({
      ownerUrl: ctx.ownerUrl,
      rootUrl: ctx.rootUrl,
      backupDir: ctx.backupDir,
      retentionDays: ctx.backupRetentionDays,
      pgBinDir: ctx.pgBinDir,
    });
    const rows = Object.values(result.manifest.tables).reduce((a, b) => a + b, 0);
    ctx.logger.info(
      { file: result.file, bytes: result.bytes, durationMs: result.durationMs, tables: Object.keys(result.manifest.tables).length, rows, pruned: result.pruned.length },
      "backup written",
    );
    await recordBackupRun(ctx.ownerUrl, "backup", {
      file: result.file,
      ok: true,
      details: { bytes: result.bytes, durationMs: result.durationMs, rows, pruned: result.pruned },
      startedAt,
    });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    ctx.logger.error({ error: message }, "backup failed");
    await recordBackupRun(ctx.ownerUrl, "backup", { file: null, ok: false, details: { error: message }, startedAt }).catch(() => {});
    throw error;
  }
};
