// IDE GraphQL extensions, graphql-codegen and graphql-inspector find the project through
// graphql-config's own loader, from the repository root with no flags. graphql-config does not
// search for `.gqlrc.yml`, so package.json carries the same configuration under its `graphql`
// key (which the loader does read); this test keeps the two equal and checks that what they
// point at exists: schema.graphql and the operation documents the walkthrough test runs.

import path from "node:path";
import { loadConfig } from "graphql-config";
import { projectRoot } from "../../core/paths.ts";

test("loadConfig() from the repository root finds the schema and the operations", async () => {
  const config = await loadConfig({ rootDir: projectRoot });
  expect(config).toBeDefined();
  expect(path.relative(projectRoot, config!.filepath)).toBe("package.json");
  const project = config!.getDefault();
  const schema = await project.getSchema();
  expect(schema.getQueryType()?.getFields()).toHaveProperty("organizationBySlug");
  const documents = await project.getDocuments();
  const names = documents.flatMap((source) => (source.document?.definitions ?? []).map((d: any) => d.name?.value));
  expect(names).toEqual(expect.arrayContaining(["Register", "CreateOrganization", "CreateProject", "StartGeneration", "Logout"]));
});

test(".gqlrc.yml says the same as package.json's graphql key", async () => {
  const fromPackage = (await loadConfig({ rootDir: projectRoot }))!.getDefault();
  const fromFile = (await loadConfig({ filepath: path.join(projectRoot, ".gqlrc.yml") }))!.getDefault();
  expect({ schema: fromFile.schema, documents: fromFile.documents }).toEqual({ schema: fromPackage.schema, documents: fromPackage.documents });
});
