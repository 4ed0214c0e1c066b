import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Every test talks to servers on 127.0.0.1; nothing should take long.
    testTimeout: 15_000,
    hookTimeout: 15_000,
  },
});
