/** Bounded waits for the tests: a condition polled until it holds, or a failure naming it (a bound, not a timing bet). */

/** Waits for `predicate`, polling the event loop; fails after `ms`. */
export async function until(predicate: () => boolean, ms = 5000, what = "condition"): Promise<void> {
  const end = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** `until` for an async predicate (a rejection counts as not yet): polls and fails with `what` after `ms`. */
export async function untilAsync(predicate: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  let ok = false;
  const end = Date.now() + ms;
  while (!ok) {
    ok = await predicate().catch(() => false);
    if (!ok && Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    if (!ok) await new Promise((r) => setTimeout(r, 20));
  }
}
