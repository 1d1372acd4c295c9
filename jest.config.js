// Tests are TypeScript compiled by SWC; each test file gets its own database cloned from a
process.env.GRAPHILE_ENV ??= "development";
// template that global-setup migrates once per run (test/helpers/).
export default {
  testEnvironment: "node",
  roots: ["<rootDir>/test"],
  testMatch: ["**/*.test.ts"],
  transform: {
    "^.+\\.ts$": ["@swc/jest", { jsc: { parser: { syntax: "typescript" }, target: "es2023" }, module: { type: "commonjs" } }],
  },
  globalSetup: "<rootDir>/test/helpers/global-setup.ts",
  globalTeardown: "<rootDir>/test/helpers/global-teardown.ts",
  testTimeout: 60000,
  maxWorkers: 2,
};
