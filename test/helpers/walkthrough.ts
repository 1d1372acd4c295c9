// The client journey of test/operations/NN-*.graphql (docs/graphql-guide.md, "Walkthrough"):
// every operation of every file, in order, with the token from Register/Authenticate and the ids
// from earlier answers as variables. How each operation reaches the server is the caller's:
// as its text (walkthrough.test.ts) or as a trusted document's id (walkthrough-trusted.test.ts).

import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { Kind, parse, type OperationDefinitionNode } from "postgraphile/graphql";
import { projectRoot } from "../../core/paths.ts";

export const OPERATIONS_FOLDER = path.join(projectRoot, "test", "operations");

/** The journey's files, in order. */
export function walkthroughFiles(): string[] {
  return readdirSync(OPERATIONS_FOLDER)
    .filter((name) => name.endsWith(".graphql"))
    .sort();
}

export interface JourneyStep {
  /** The file's whole text (all its operations). */
  text: string;
  operationName: string;
  variables: Record<string, unknown>;
  token: string | undefined;
}

export type Send = (step: JourneyStep) => Promise<{ status: number; body: { data?: any; errors?: unknown[] } }>;

/** Runs the journey; every operation must answer without errors. Returns the names run and the last token. */
export async function runWalkthrough(send: Send): Promise<{ ran: string[]; token: string | undefined }> {
  const state: Record<string, unknown> = {};
  let token: string | undefined;
  const ran: string[] = [];
  for (const name of walkthroughFiles()) {
    const text = readFileSync(path.join(OPERATIONS_FOLDER, name), "utf8");
    const operations = parse(text).definitions.filter((d) => d.kind === Kind.OPERATION_DEFINITION) as OperationDefinitionNode[];
    for (const operation of operations) {
      const operationName = operation.name!.value;
      const variables = Object.fromEntries(
        (operation.variableDefinitions ?? []).map((v) => {
          const key = v.variable.name.value;
          expect({ operationName, missing: key, known: key in state }).toMatchObject({ known: true });
          return [key, state[key]];
        }),
      );
      const { body } = await send({ text, operationName, variables, token });
      expect({ operationName, errors: body.errors }).toEqual({ operationName, errors: undefined });
      const data = body.data;
      token = data.register?.jwtToken ?? data.authenticate?.jwtToken ?? token;
      state.organizationId = data.createOrganization?.organization?.id ?? state.organizationId;
      state.projectId = data.createProject?.project?.id ?? state.projectId;
      state.generationId = data.startGeneration?.generation?.id ?? state.generationId;
      if (operationName === "ProjectGenerations") {
        expect(data.project.generations.nodes).toEqual([
          { id: state.generationId, model: "flux-1", status: "succeeded", creditsCharged: "7", reservation: { amount: "10", status: "captured" } },
        ]);
      }
      ran.push(operationName);
    }
  }
  expect(ran).toEqual(expect.arrayContaining(["Register", "CreateProject", "StartGeneration", "CompleteGeneration", "ProjectGenerations", "Logout"]));
  return { ran, token };
}

/** POST /graphql with a JSON body and the journey's token. */
export async function postGraphQL(url: string, body: Record<string, unknown>, token?: string): Promise<{ status: number; body: { data?: any; errors?: any[] } }> {
  const headers: Record<string, string> = { "content-type": "application/json", accept: "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(`${url}/graphql`, { method: "POST", headers, body: JSON.stringify(body) });
  return { status: response.status, body: (await response.json()) as { data?: any; errors?: any[] } };
}
