// `npm run db:watch`: re-applies db/functions and db/policies whenever a file in them is saved,
// so a developer edits a function's one file and tries it at once. A file with an error is
// reported and nothing is applied (one transaction); the next save tries again. Resolves on
// Ctrl-C.

import { watch } from "node:fs";
import { applySchema, FUNCTIONS_FOLDER, POLICIES_FOLDER } from "./apply-schema.ts";

export function watchSchema(ownerUrl: string, log: (line: string) => void): Promise<void> {
  let timer: NodeJS.Timeout | null = null;
  let running = Promise.resolve();
  const apply = () => {
    running = running.then(async () => {
      try {
        if (await applySchema(ownerUrl, { log })) log("re-applied; watching for changes (Ctrl-C stops)");
      } catch (error) {
        log(`not applied: ${(error as Error).message}`);
      }
    });
  };
  const watchers = [FUNCTIONS_FOLDER, POLICIES_FOLDER].map((folder) =>
    watch(folder, { recursive: true }, (_event, file) => {
      if (!file?.endsWith(".sql")) return;
      // Editors write a file in several steps: apply once they are done.
      if (timer) clearTimeout(timer);
      timer = setTimeout(apply, 150);
    }),
  );
  log("watching db/functions and db/policies (Ctrl-C stops)");
  return new Promise((resolve) => {
    const stop = () => {
      for (const watcher of watchers) watcher.close();
      void running.then(() => resolve());
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
}
