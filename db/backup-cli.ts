// Backups from the command line (same connection settings as `npm start`):
//   npm run db:backup                                  pg_dump into BACKUP_DIR, prune old ones
//   npm run db:restore -- <file> [--into <database>]   restore into a NEW database
//   npm run db:restore -- <file> --overwrite-live      drop the live database and restore it
//   npm run db:verify-backup [-- <file>]               restore test of the newest (or given) backup
// With the embedded PostgreSQL, a running `npm start` is used as it is; otherwise it is started
// for the command and stopped after.

import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { loadConfig, ConfigError, type Config } from "../core/config.ts";
import { connectDatabase } from "./database.ts";
import { loadLocalSecrets } from "./secrets.ts";
import { ROLES } from "./roles.ts";
import { withCredentials, redact } from "./urls.ts";
import { createBackup, recordBackupRun, restoreBackup, verifyBackup, type BackupSettings } from "./backup.ts";

const log = (line: string) => console.log(line);

interface Target {
  ownerUrl: string;
  rootUrl: string | null;
  stop(): Promise<void>;
}

function embeddedIsRunning(config: Config): boolean {
  const pidFile = path.join(config.dataDir, "postgres", "postmaster.pid");
  if (!existsSync(pidFile)) return false;
  const pid = Number(readFileSync(pidFile, "utf8").split("\n")[0]);
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function target(config: Config): Promise<Target> {
  if (config.databaseUrl) {
    return { ownerUrl: config.databaseUrl, rootUrl: config.rootDatabaseUrl, stop: async () => {} };
  }
  if (!config.rootDatabaseUrl && embeddedIsRunning(config)) {
    // `npm start` is serving from the embedded cluster: talk to it, don't start another.
    const secrets = loadLocalSecrets(config.dataDir);
    const rootUrl = `postgres://postgres:${encodeURIComponent(secrets.embeddedSuperuserPassword)}@127.0.0.1:${config.embeddedPostgresPort}/postgres`;
    return {
      ownerUrl: withCredentials(rootUrl, ROLES.owner, config.ownerPassword ?? secrets.ownerPassword, config.databaseName),
      rootUrl,
      stop: async () => {},
    };
  }
  const database = await connectDatabase(config, (line) => console.error(`[db] ${line}`));
  return { ownerUrl: database.ownerUrl, rootUrl: database.rootUrl, stop: database.stop };
}

function flag(args: string[], name: string): string | null {
  const index = args.indexOf(name);
  if (index === -1) return null;
  const value = args[index + 1];
  if (!value || value.startsWith("--")) throw new ConfigError(`${name} needs a value`);
  return value;
}

async function main(command: string | undefined, args: string[]) {
  const config = loadConfig();
  const db = await target(config);
  const settings: BackupSettings = {
    ownerUrl: db.ownerUrl,
    rootUrl: db.rootUrl,
    backupDir: config.backupDir,
    retentionDays: config.backupRetentionDays,
    pgBinDir: config.pgBinDir,
  };
  try {
    switch (command) {
      case "backup": {
        const startedAt = new Date();
        const result = await createBackup(settings);
        const rows = Object.values(result.manifest.tables).reduce((a, b) => a + b, 0);
        await recordBackupRun(db.ownerUrl, "backup", {
          file: result.file,
          ok: true,
          details: { bytes: result.bytes, durationMs: result.durationMs, rows, pruned: result.pruned },
          startedAt,
        });
        log(`[backup] ${result.file} (${result.bytes} bytes, ${Object.keys(result.manifest.tables).length} tables, ${rows} rows, ${result.durationMs} ms)`);
        for (const file of result.pruned) log(`[backup] pruned ${file} (older than ${config.backupRetentionDays} days)`);
        break;
      }
      case "restore": {
        const file = args.find((arg, i) => !arg.startsWith("--") && (i === 0 || !args[i - 1].startsWith("--into")));
        if (!file) throw new ConfigError("usage: npm run db:restore -- <file> [--into <database>] [--overwrite-live]");
        if (!db.rootUrl) throw new ConfigError("db:restore needs ROOT_DATABASE_URL (a superuser creates the new database)");
        const overwriteLive = args.includes("--overwrite-live");
        const into =
          flag(args, "--into") ??
          (overwriteLive ? config.databaseName : `${config.databaseName}_restored_${new Date().toISOString().replace(/\D/g, "").slice(0, 14)}`);
        const result = await restoreBackup({
          file: path.resolve(file),
          rootUrl: db.rootUrl,
          into,
          liveDatabase: config.databaseName,
          overwriteLive,
          pgBinDir: config.pgBinDir,
        });
        log(`[restore] ${file} -> database ${result.database} (${result.durationMs} ms)`);
        if (result.database !== config.databaseName) {
          log(`[restore] the live database ${config.databaseName} is untouched; point DATABASE_NAME (or the URLs) at ${result.database} to use the copy`);
        }
        break;
      }
      case "verify": {
        const startedAt = new Date();
        const result = await verifyBackup(settings, args[0] ? path.resolve(args[0]) : undefined);
        await recordBackupRun(db.ownerUrl, "verify", {
          file: result.file,
          ok: result.ok,
          details: { tables: result.tables, rows: result.rows, mismatches: result.mismatches.slice(0, 50), durationMs: result.durationMs, ...(result.error ? { error: result.error } : {}) },
          startedAt,
        });
        if (result.ok) {
          log(`[verify] OK: ${result.file} restored into a scratch database; ${result.tables} tables, ${result.rows} rows and the credit sums match the dump's snapshot (${result.durationMs} ms)`);
        } else {
          console.error(`[verify] FAILED: ${result.file ?? "(no backup)"}: ${result.error ?? result.mismatches.join("; ")}`);
          process.exitCode = 2;
        }
        break;
      }
      default:
        throw new ConfigError("usage: node db/backup-cli.ts backup | restore <file> [--into db] [--overwrite-live] | verify [file]");
    }
  } finally {
    await db.stop();
  }
}

main(process.argv[2], process.argv.slice(3)).catch((error) => {
  const message = error instanceof Error ? error.message : String(error);
  console.error(`[backup] ${error instanceof ConfigError ? "" : "failed: "}${message.replace(/postgres(ql)?:\/\/\S+/g, (url) => redact(url))}`);
  process.exit(1);
});
