/**
 * Shared by the client tests: the end-to-end harness (fake Cerebras + real gateway on
 * 127.0.0.1) with a GatewayClient pointed at it.
 */
import { GatewayClient } from "../../src/client/gateway-client.js";
import type { GatewayClientOptions } from "../../src/client/options.js";
import { startHarness, type Harness, type HarnessOptions } from "../helpers/harness.js";

/**
 * The gateway's own upstream retries off, so one injected fault reaches the client once.
 * (Unknown variables are ignored by the config, so this is harmless where the gateway
 * has no upstream retries.)
 */
export const NO_GATEWAY_RETRIES = { UPSTREAM_MAX_RETRIES: "0" } as const;

export interface ClientHarness extends Harness {
  readonly client: GatewayClient;
}

export async function startClientHarness(options: HarnessOptions = {}, clientOptions: GatewayClientOptions = {}): Promise<ClientHarness> {
  const h = await startHarness({ ...options, env: { ...NO_GATEWAY_RETRIES, ...options.env } });
  const client = new GatewayClient({ target: h.address, ...clientOptions });
  return {
    ...h,
    client,
    close: async () => {
      client.close();
      await h.close();
    },
  };
}

/** The rejection of `p`; fails the test when `p` resolves. */
export { rejection } from "../helpers/harness.js";

/** Iterates to the end; returns what was received and what was thrown (never rejects). */
export async function drain<T>(stream: AsyncIterable<T>): Promise<{ items: T[]; error: unknown }> {
  const items: T[] = [];
  try {
    for await (const item of stream) items.push(item);
  } catch (error) {
    return { items, error };
  }
  return { items, error: undefined };
}
