// Issue 25, finding 9: stored state at full speed until the quotas refuse (or the attack's few
// seconds end): 2 senders start and fail generations with ~16 kB of metadata (the largest accepted) (free), 2 create
// and delete projects, all as the attacker's user. The outcome counts show how many were made
// and how many the quotas refused (QUOTA_EXCEEDED).

import { loops, type Attack } from "./attack.ts";
import { graphql, must } from "./graphql.ts";

const METADATA = { note: "fairbench state growth", pad: "y".repeat(16_000) };
let projectId = "";

export const stateGrowth: Attack = {
  name: "state growth (A9)",
  description: "2 senders start+fail 16 kB generations, 2 create+delete projects, until quotas refuse",
  async prepare(context) {
    const found = await must(
      context.graphqlUrl,
      `query P($org: UUID!) { organization(id: $org) { projects(first: 1) { nodes { id } } } }`,
      { org: context.attacker.organizationId },
      context.attackerToken,
    );
    projectId = found.organization.projects.nodes[0].id;
  },
  start(context) {
    const org = context.attacker.organizationId;
    const token = context.attackerToken;
    const run = `${process.pid}-${Date.now()}`;
    return loops(4, async (sender, i) => {
      if (sender < 2) {
        const started = await graphql(
          context.graphqlUrl,
          `mutation S($org: UUID!, $project: UUID!, $key: String!, $metadata: JSON!) {
            startGeneration(input: { organizationId: $org, projectId: $project, kind: text, model: "fairbench-growth", metadata: $metadata, estimatedCredits: "1", idempotencyKey: $key }) { generation { id } } }`,
          { org, project: projectId, key: `fairbench-growth-${run}-${i}`, metadata: METADATA },
          token,
        );
        const id = started.data?.startGeneration?.generation?.id;
        if (!id) return `generation ${started.outcome}`;
        const failed = await graphql(context.graphqlUrl, `mutation F($id: UUID!) { failGeneration(input: { generationId: $id }) { clientMutationId } }`, { id }, token);
        return `generation+fail ${failed.outcome}`;
      }
      const created = await graphql(
        context.graphqlUrl,
        `mutation C($org: UUID!, $name: String!) { createProject(input: { project: { organizationId: $org, name: $name } }) { project { id } } }`,
        { org, name: `fairbench ${run} ${i}` },
        token,
      );
      const id = created.data?.createProject?.project?.id;
      if (!id) return `project ${created.outcome}`;
      const deleted = await graphql(context.graphqlUrl, `mutation D($id: UUID!) { deleteProject(input: { id: $id }) { clientMutationId } }`, { id }, token);
      return `project+delete ${deleted.outcome}`;
    });
  },
};
