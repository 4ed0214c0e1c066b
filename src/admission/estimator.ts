/**
 * The prompt-token estimate a reservation is made from, as Cerebras makes its own
 * ("estimated input", CEREBRAS_API.md §5.4). It must be cheap: it runs before every
 * limited call, so it is one pass over the text counting character classes, weighted by
 * how many o200k tokens (gpt-oss' tokenizer) each class costs on average, not a
 * tokenizer. test/admission/estimator.test.ts measures it against gpt-tokenizer's
 * o200k_base over a varied corpus; the README quotes the figures (within about ±20% per
 * sample of a few hundred tokens or more, a few % overall).
 *
 * The error only moves capacity around for the length of a call: settlement charges the
 * upstream's real usage and releases the rest (or charges the shortfall).
 */
import type { ChatCompletionChunk, ChatCompletionRequest, ContentParts, Message } from "../../gen/aigateway/v1/chat.js";

/**
 * Tokens per character, by class, fitted to o200k on the corpus (see the file comment).
 * Words of Latin letters run about 4.5 characters a token; digits are split in threes
 * at most; CJK is close to a token per character; emoji and other astral characters take
 * two or three; long unbroken runs of letters and digits (hashes, base64) cost far more
 * than words.
 */
const PER_LETTER = 0.22;
const PER_DIGIT = 0.65;
const PER_SPACE = 0.08;
const PER_NEWLINE = 0.35;
const PER_PUNCTUATION = 0.7;
const PER_CJK = 0.75;
const PER_OTHER = 0.32;
const PER_ASTRAL = 2.3;
/** Extra, per letter or digit past the first LONG_RUN of an unbroken run. */
const PER_LONG_RUN = 0.8;
const LONG_RUN = 24;

/** Role and separator tokens of a chat template, per message (o200k_harmony's <|start|>role<|message|>…<|end|>). */
const PER_MESSAGE = 4;
/** The template's own tokens around the conversation. */
const PER_REQUEST = 8;
/** An image's tokens are not knowable from the request; a fixed guess (settlement corrects it). */
export const IMAGE_TOKENS = 1024;

/** ASCII weights by character code, and which ones continue a run of letters and digits. */
const ASCII_WEIGHT = new Float64Array(128);
const ASCII_ALNUM = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const letter = (c >= 97 && c <= 122) || (c >= 65 && c <= 90);
  const digit = c >= 48 && c <= 57;
  ASCII_ALNUM[c] = letter || digit ? 1 : 0;
  ASCII_WEIGHT[c] = letter ? PER_LETTER : digit ? PER_DIGIT : c === 32 ? PER_SPACE : c === 10 ? PER_NEWLINE : PER_PUNCTUATION;
}

/** o200k tokens `text` is likely to take. */
export function estimateTextTokens(text: string): number {
  let weighted = 0;
  let run = 0;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c < 128) {
      weighted += ASCII_WEIGHT[c]!;
      if (ASCII_ALNUM[c] === 1) {
        if (++run > LONG_RUN) weighted += PER_LONG_RUN;
      } else {
        run = 0;
      }
      continue;
    }
    run = 0;
    if (c >= 0xd800 && c <= 0xdbff) {
      weighted += PER_ASTRAL; // a surrogate pair: one astral character
      i++;
    } else if ((c >= 0x3040 && c <= 0x9fff) || (c >= 0xac00 && c <= 0xd7af) || (c >= 0xf900 && c <= 0xfaff) || (c >= 0xff00 && c <= 0xffef)) {
      weighted += PER_CJK; // kana, CJK ideographs, Hangul, full-width forms
    } else {
      weighted += PER_OTHER;
    }
  }
  return Math.ceil(weighted);
}

/** Tokens of everything in the request the model reads: messages, tool definitions, the output schema, a prediction. */
export function estimatePromptTokens(request: ChatCompletionRequest): number {
  let tokens = PER_REQUEST;
  for (const m of request.messages) tokens += messageTokens(m);
  for (const t of request.tools) {
    const f = t.function;
    if (f === undefined) continue;
    tokens += PER_MESSAGE + estimateTextTokens(f.name);
    if (f.description !== undefined) tokens += estimateTextTokens(f.description);
    // parameters_json, when set, is what goes upstream (issue 17).
    if (f.parametersJson !== undefined) tokens += estimateTextTokens(f.parametersJson);
    else if (f.parameters !== undefined) tokens += estimateTextTokens(JSON.stringify(f.parameters));
  }
  const format = request.responseFormat?.format;
  if (format?.$case === "jsonSchema") {
    if (format.value.schemaJson !== undefined) tokens += estimateTextTokens(format.value.schemaJson);
    else if (format.value.schema !== undefined) tokens += estimateTextTokens(JSON.stringify(format.value.schema));
  }
  const prediction = request.prediction?.contentKind;
  if (prediction !== undefined) tokens += prediction.$case === "content" ? estimateTextTokens(prediction.value) : partsTokens(prediction.value);
  return tokens;
}

function messageTokens(m: Message): number {
  let tokens = PER_MESSAGE;
  const content = m.contentKind;
  if (content !== undefined) tokens += content.$case === "content" ? estimateTextTokens(content.value) : partsTokens(content.value);
  if (m.name !== undefined) tokens += estimateTextTokens(m.name);
  if (m.reasoning !== undefined) tokens += estimateTextTokens(m.reasoning);
  for (const call of m.toolCalls) {
    const f = call.function;
    if (f !== undefined) tokens += estimateTextTokens(f.name) + estimateTextTokens(f.arguments);
  }
  return tokens;
}

function partsTokens(parts: ContentParts): number {
  let tokens = 0;
  for (const p of parts.parts) {
    const part = p.part;
    if (part?.$case === "text") tokens += estimateTextTokens(part.value);
    else if (part?.$case === "imageUrl") tokens += IMAGE_TOKENS;
  }
  return tokens;
}

/**
 * What a stream delivered, for a call that ends without the upstream's usage (cancelled,
 * cut): the completion text (content, reasoning, tool-call names and arguments) as it
 * reached the caller, estimated like a prompt, a delta at a time.
 */
export class CompletionTally {
  private weighted = 0;

  add(chunk: ChatCompletionChunk): void {
    for (const choice of chunk.choices) {
      const d = choice.delta;
      if (d === undefined) continue;
      if (d.content !== undefined) this.weighted += estimateTextTokens(d.content);
      if (d.reasoning !== undefined) this.weighted += estimateTextTokens(d.reasoning);
      for (const call of d.toolCalls) {
        const f = call.function;
        if (f?.name !== undefined) this.weighted += estimateTextTokens(f.name);
        if (f?.arguments !== undefined) this.weighted += estimateTextTokens(f.arguments);
      }
    }
  }

  /** Completion tokens delivered so far (an estimate). */
  get tokens(): number {
    return this.weighted;
  }
}
