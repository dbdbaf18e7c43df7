import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    reporters: ["default", "./test/support/summary-reporter.ts"],
    // generous: on a loaded machine (two busy cores) integration tests run several times slower
    testTimeout: 180_000,
    hookTimeout: 180_000,
    // Integration tests each start their own nats-server; two cores, so keep parallelism modest.
    pool: "forks",
    poolOptions: { forks: { maxForks: 2, minForks: 1 } }
  }
})
