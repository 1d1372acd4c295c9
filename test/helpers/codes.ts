// The outcome of a query as a short string, for tests that compare refusals: the business code
// (app_hidden.raise_error: SQLSTATE TB000, code in DETAIL), any other SQLSTATE with its message,
// or null when the query succeeded.

export async function codeOf(promise: Promise<unknown>): Promise<string | null> {
  try {
    await promise;
    return null;
  } catch (error: any) {
    return error.code === "TB000" ? error.detail : `${error.code}: ${error.message}`;
  }
}

/** An id no row has. */
export const UNKNOWN = "00000000-0000-7000-8000-000000000000";
