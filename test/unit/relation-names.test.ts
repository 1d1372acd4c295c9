// Relation names in the committed schema read like the domain, not like the foreign keys they come
// from (server/plugins/relation-names.ts), and connection rows are never null.

import { readFileSync } from "node:fs";
import path from "node:path";
import { buildSchema, getNamedType, isObjectType, type GraphQLObjectType } from "postgraphile/graphql";
import { projectRoot } from "../../core/paths.ts";

const schema = buildSchema(readFileSync(path.join(projectRoot, "schema.graphql"), "utf8"));
const rowTypes = Object.values(schema.getTypeMap()).filter(
  (type): type is GraphQLObjectType => isObjectType(type) && "nodeId" in type.getFields() && type.name !== "Query",
);

test("no relation is named after its key columns", () => {
  const plumbing: string[] = [];
  for (const type of rowTypes) {
    for (const field of Object.values(type.getFields())) {
      const target = getNamedType(field.type).name;
      const isRelation = rowTypes.some((t) => t.name === target) || target.endsWith("Connection");
      // PostGraphile's own forms: `userByInvitedBy`, `generationsByOrganizationIdAndProjectId`
      // (target name + By + columns), and `organizationProject` (tenant column + target name).
      const base = target.replace(/Connection$/, "");
      const plural = field.name.toLowerCase().startsWith(base.toLowerCase());
      if (isRelation && ((plural && /By[A-Z]/.test(field.name)) || (/^organization[A-Z]/.test(field.name) && !base.startsWith("Organization")))) {
        plumbing.push(`${type.name}.${field.name}`);
      }
    }
  }
  expect(plumbing).toEqual([]);
});

test("no root lookup is named after its key columns: tenant-scoped unique keys read as the key alone", () => {
  const query = schema.getQueryType()!.getFields();
  expect(Object.keys(query).filter((name) => /By[A-Z]\w*And[A-Z]/.test(name))).toEqual([]);
  const args = (name: string) => query[name]?.args.map((arg) => `${arg.name}: ${arg.type}`).sort();
  expect(args("generationByIdempotencyKey")).toEqual(["idempotencyKey: String!", "organizationId: UUID!"]);
  expect(args("creditLedgerEntryByIdempotencyKey")).toEqual(["idempotencyKey: String!", "organizationId: UUID!"]);
  expect(args("creditLedgerEntryBySystemKey")).toEqual(["organizationId: UUID!", "systemKey: String!"]);
  expect(args("creditReservationByIdempotencyKey")).toEqual(["idempotencyKey: String!", "organizationId: UUID!"]);
  expect(args("creditReservationBySystemKey")).toEqual(["organizationId: UUID!", "systemKey: String!"]);
});

test.each([
  ["Generation", "project", "Project"],
  ["Generation", "reservation", "CreditReservation"],
  ["CreditLedgerEntry", "reservation", "CreditReservation"],
  ["Project", "generations", "GenerationConnection!"],
  ["CreditReservation", "generations", "GenerationConnection!"],
  ["Invitation", "invitedByUser", "User"],
  ["Invitation", "acceptedByUser", "User"],
  ["OrganizationMember", "invitedByUser", "User"],
  ["ApiKey", "revokedByUser", "User"],
  ["User", "sentInvitations", "InvitationConnection!"],
])("%s.%s is %s", (typeName, field, type) => {
  const found = (schema.getType(typeName) as GraphQLObjectType).getFields()[field];
  expect(String(found?.type)).toBe(type);
});

test("connection rows are non-null", () => {
  const connections = Object.values(schema.getTypeMap()).filter((t): t is GraphQLObjectType => isObjectType(t) && t.name.endsWith("Connection"));
  expect(connections.length).toBeGreaterThan(10);
  for (const connection of connections) {
    const fields = connection.getFields();
    expect(`${connection.name}.nodes: ${fields.nodes.type}`).toMatch(/: \[\w+!\]!$/);
  }
});
