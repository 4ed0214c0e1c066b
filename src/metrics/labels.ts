/**
 * Label values, kept bounded: every distinct value is a time series the scraper stores
 * forever, so nothing a caller can make up becomes a label (no request ids, no free text).
 */
import type { CallRecord } from "../core/call-log.js";

/** Calls with no model (model listings, refused or unrouted requests). */
export const NO_MODEL = "none";
/** A model id that is neither in the catalog nor accepted by the upstream, or one past the cap. */
export const UNLISTED_MODEL = "unlisted";
/** Calls that presented no gateway key (auth off). */
export const ANONYMOUS_KEY = "anonymous";
/** HTTP requests that matched no route. */
export const UNROUTED = "unrouted";

/** Models outside the catalog given their own label at most (dedicated endpoints); the rest share UNLISTED_MODEL. */
const MAX_UNLISTED_MODELS = 32;
/** Longest label value a model id may become (the core refuses longer ids at the door: MAX_MODEL_ID). */
const MAX_MODEL_LABEL = 256;

/**
 * The `model` label. The model id is set before the catalog check, so a caller asking for
 * "x-<random>" must not mint a series per request: a model is named when the catalog lists
 * it, or when the upstream answered 200 for it (ALLOW_UNLISTED_MODELS, a stale catalog);
 * anything else, any unlisted model past a small cap, and any id too long to be a label,
 * is UNLISTED_MODEL.
 */
export class ModelLabels {
  private readonly accepted = new Set<string>();

  constructor(private readonly listed: (id: string) => boolean) {}

  of(record: CallRecord): string {
    const model = record.stats.model;
    if (model === undefined || model === "") return NO_MODEL;
    if (model.length > MAX_MODEL_LABEL) return UNLISTED_MODEL;
    if (this.accepted.has(model) || this.listed(model)) return model;
    if (record.stats.upstreamStatus === 200 && this.accepted.size < MAX_UNLISTED_MODELS) {
      this.accepted.add(model);
      return model;
    }
    return UNLISTED_MODEL;
  }
}

export function keyLabel(record: CallRecord): string {
  return record.stats.keyName ?? ANONYMOUS_KEY;
}

export function methodLabel(record: CallRecord): string {
  return record.method ?? UNROUTED;
}
