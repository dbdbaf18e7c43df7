import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    reporters: ["default", "./test/support/summary-reporter.ts"],
    // generous: on a loaded machine (two busy cores, other work) integration tests ran up to 10x slower;
    // a hang still fails, and no test asserts a duration
    testTimeout: 600_000,
    hookTimeout: 600_000,
    // Integration tests each start their own nats-server; two cores, so keep parallelism modest.
    pool: "forks",
    poolOptions: { forks: { maxForks: 2, minForks: 1 } }
  }
})
