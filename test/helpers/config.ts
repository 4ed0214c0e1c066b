/** Configuration in tests: files the gateway reads (keys files, upstream keys), and the start-up refusals. */
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, loadConfig } from "../../src/config.js";

/** Writes `text` to a file named `name` in a fresh temporary directory; returns its path. */
export async function tempFile(name: string, text: string): Promise<string> {
  const path = join(await mkdtemp(join(tmpdir(), "aigw-test-")), name);
  await writeFile(path, text);
  return path;
}

/** The message of the ConfigError loadConfig throws for `env`; fails the test if it accepts it. */
export function configError(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
  throw new Error("expected a ConfigError");
}
