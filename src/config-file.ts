/**
 * Reads a configuration file that may hold secrets (GATEWAY_KEYS_FILE, CEREBRAS_KEYS_FILE):
 * `.json` is JSON, anything else YAML. A problem names the file and never quotes it — a
 * parser's message may quote the line, and the line may be a key.
 */
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";

export type ConfigFile = { readonly data: unknown; readonly problem?: undefined } | { readonly data?: undefined; readonly problem: string };

export function readConfigFile(path: string): ConfigFile {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    return { problem: `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? "error"}` };
  }
  try {
    return { data: path.endsWith(".json") ? JSON.parse(text) : parseYaml(text) };
  } catch {
    return { problem: `${path} is not valid ${path.endsWith(".json") ? "JSON" : "YAML"}` };
  }
}
