/**
 * A listener that could not bind is a configuration problem (the port is taken, or the
 * host is not this machine's), not a crash: main.ts reports it like a bad environment,
 * one line naming the variable, and exits 2.
 */

/** The bind failures that mean "change the configuration"; anything else stays a crash. */
const CAUSES: Readonly<Record<string, string>> = {
  EADDRINUSE: "is already in use (EADDRINUSE): stop the other process or choose another port",
  EACCES: "cannot be bound (EACCES): ports below 1024 need privileges",
  EADDRNOTAVAIL: "is not an address of this machine (EADDRNOTAVAIL)",
};

export class ListenError extends Error {
  override readonly name = "ListenError";

  constructor(
    /** The variable to change, e.g. GRPC_PORT. */
    readonly variable: string,
    /** host:port that could not be bound. */
    readonly address: string,
    /** The system error code (EADDRINUSE…). */
    readonly code: string,
    cause: unknown,
  ) {
    super(`${variable}: ${address} ${CAUSES[code] ?? code}`, { cause });
  }
}

/**
 * For a listener's start-up promise: `.catch(asListenError("GRPC_PORT", host, port))`.
 * node:net errors carry `code`; grpc-js folds them into its message ("No address added
 * … errors: [listen EADDRINUSE: …]"), so the code is also looked for there.
 */
export function asListenError(variable: string, host: string, port: number): (err: unknown) => never {
  return (err) => {
    const code = bindErrorCode(err);
    if (code === undefined) throw err;
    throw new ListenError(variable, `${host}:${port}`, code, err);
  };
}

function bindErrorCode(err: unknown): string | undefined {
  const own = (err as { code?: unknown } | null)?.code;
  if (typeof own === "string" && own in CAUSES) return own;
  const message = err instanceof Error ? err.message : "";
  return Object.keys(CAUSES).find((code) => message.includes(code));
}
