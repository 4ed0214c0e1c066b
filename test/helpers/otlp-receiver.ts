/**
 * An OTLP trace receiver on 127.0.0.1 for tests, standing in for an OpenTelemetry
 * Collector: OTLP/HTTP (`POST /v1/traces`, protobuf or JSON) and OTLP/gRPC
 * (`opentelemetry.proto.collector.trace.v1.TraceService/Export`). Protobuf is decoded
 * with the protobufjs code OpenTelemetry generated from opentelemetry-proto (shipped in
 * @opentelemetry/otlp-transformer 0.200.0, installed as `otlp-generated-protos`).
 *
 * Every request body is kept as received (`payloads`), so a test can search the whole
 * export for what must never be in it; spans are flattened for assertions. `spans(until)`
 * resolves as soon as what arrived satisfies `until` (event-driven, bounded by a timeout).
 */
import { createServer, type IncomingMessage } from "node:http";
import { createRequire } from "node:module";
import { gunzipSync } from "node:zlib";
import { Server, ServerCredentials, type ServerUnaryCall, type sendUnaryData } from "@grpc/grpc-js";

export interface ReceivedEvent {
  readonly name: string;
  readonly timeUnixNano: bigint;
  readonly attributes: Readonly<Record<string, unknown>>;
}

export interface ReceivedSpan {
  /** Lower-case hex, as in a traceparent. */
  readonly traceId: string;
  readonly spanId: string;
  /** "" for a root span. */
  readonly parentSpanId: string;
  readonly traceState: string;
  readonly name: string;
  /** OTLP SpanKind: 1 internal, 2 server, 3 client. */
  readonly kind: number;
  readonly startTimeUnixNano: bigint;
  readonly endTimeUnixNano: bigint;
  readonly attributes: Readonly<Record<string, unknown>>;
  readonly events: readonly ReceivedEvent[];
  /** OTLP status code: 0 unset, 1 ok, 2 error. */
  readonly status: { readonly code: number; readonly message: string };
  /** The resource's attributes (service.name…). */
  readonly resource: Readonly<Record<string, unknown>>;
}

export interface OtlpReceiver {
  /** http://127.0.0.1:<port>: for OTEL_EXPORTER_OTLP_ENDPOINT (OTLP/HTTP appends /v1/traces; OTLP/gRPC uses it as is). */
  readonly endpoint: string;
  /** Raw request bodies, decompressed, in arrival order. */
  readonly payloads: Buffer[];
  /** Content types of the requests, in arrival order. */
  readonly contentTypes: string[];
  readonly received: ReceivedSpan[];
  /** Resolves with every span so far once `until(spans)` holds; rejects after `timeoutMs`. */
  spans(until: (spans: readonly ReceivedSpan[]) => boolean, timeoutMs?: number): Promise<ReceivedSpan[]>;
  close(): Promise<void>;
}

/** The part of the generated protobufjs classes used here (root.js is untyped: a protobufjs Root). */
interface Decoder {
  decode(bytes: Uint8Array): unknown;
  toObject(message: unknown, options: Record<string, unknown>): unknown;
}

const generated = createRequire(import.meta.url)("otlp-generated-protos/build/src/generated/root.js") as {
  opentelemetry: { proto: { collector: { trace: { v1: { ExportTraceServiceRequest: Decoder } } } } };
};
const ExportTraceServiceRequest = generated.opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;

export type Transport = "http" | "grpc";

export async function startOtlpReceiver(transport: Transport = "http"): Promise<OtlpReceiver> {
  const payloads: Buffer[] = [];
  const contentTypes: string[] = [];
  const received: ReceivedSpan[] = [];
  const waiters = new Set<() => void>();
  const accept = (body: Buffer, contentType: string): void => {
    payloads.push(body);
    contentTypes.push(contentType);
    const request = contentType.includes("json") ? (JSON.parse(body.toString("utf8")) as unknown) : ExportTraceServiceRequest.toObject(ExportTraceServiceRequest.decode(body), { longs: String, bytes: Buffer });
    received.push(...flatten(request));
    for (const w of [...waiters]) w();
  };

  let endpoint: string;
  let close: () => Promise<void>;
  if (transport === "http") {
    const server = createServer((req, res) => {
      void readBody(req).then(
        (body) => {
          if (req.method !== "POST" || req.url !== "/v1/traces") {
            res.writeHead(404).end();
            return;
          }
          const type = req.headers["content-type"] ?? "";
          accept(body, type);
          // An empty ExportTraceServiceResponse: full success.
          if (type.includes("json")) res.writeHead(200, { "content-type": "application/json" }).end("{}");
          else res.writeHead(200, { "content-type": "application/x-protobuf" }).end();
        },
        () => res.writeHead(400).end(),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address();
    if (address === null || typeof address === "string") throw new Error("no port");
    endpoint = `http://127.0.0.1:${address.port}`;
    close = () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
  } else {
    const server = new Server();
    server.addService(
      {
        Export: {
          path: "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
          requestStream: false,
          responseStream: false,
          requestDeserialize: (bytes: Buffer) => bytes,
          requestSerialize: (bytes: Buffer) => bytes,
          responseSerialize: () => Buffer.alloc(0),
          responseDeserialize: () => ({}),
        },
      },
      {
        Export: (call: ServerUnaryCall<Buffer, object>, callback: sendUnaryData<object>) => {
          accept(call.request, "application/grpc");
          callback(null, {});
        },
      },
    );
    const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
    endpoint = `http://127.0.0.1:${port}`;
    close = () => new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
  }

  return {
    endpoint,
    payloads,
    contentTypes,
    received,
    spans: (until, timeoutMs = 10_000) =>
      new Promise<ReceivedSpan[]>((resolve, reject) => {
        const check = (): void => {
          if (!until(received)) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve([...received]);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`the OTLP receiver did not get the expected spans within ${timeoutMs} ms; it has: ${received.map((s) => s.name).join(", ") || "none"}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      }),
    close,
  };
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    req.on("data", (b: Buffer) => parts.push(b));
    req.on("error", reject);
    req.on("end", () => {
      const body = Buffer.concat(parts);
      resolve(req.headers["content-encoding"] === "gzip" ? gunzipSync(body) : body);
    });
  });
}

/** Either decoding (protobuf via toObject, or OTLP/JSON) has the same shape, with ids as bytes or hex. */
interface OtlpObject {
  resourceSpans?: Array<{
    resource?: { attributes?: KeyValue[] };
    scopeSpans?: Array<{ spans?: OtlpSpan[] }>;
  }>;
}
interface KeyValue {
  key: string;
  value?: AnyValue;
}
interface AnyValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: string | number;
  doubleValue?: number;
  arrayValue?: { values?: AnyValue[] };
}
interface OtlpSpan {
  traceId?: Buffer | string;
  spanId?: Buffer | string;
  parentSpanId?: Buffer | string;
  traceState?: string;
  name?: string;
  kind?: number;
  startTimeUnixNano?: string | number;
  endTimeUnixNano?: string | number;
  attributes?: KeyValue[];
  events?: Array<{ name?: string; timeUnixNano?: string | number; attributes?: KeyValue[] }>;
  status?: { code?: number; message?: string };
}

function flatten(request: unknown): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  for (const rs of (request as OtlpObject).resourceSpans ?? []) {
    const resource = attributesOf(rs.resource?.attributes);
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        out.push({
          traceId: hex(s.traceId),
          spanId: hex(s.spanId),
          parentSpanId: hex(s.parentSpanId),
          traceState: s.traceState ?? "",
          name: s.name ?? "",
          kind: s.kind ?? 0,
          startTimeUnixNano: BigInt(s.startTimeUnixNano ?? 0),
          endTimeUnixNano: BigInt(s.endTimeUnixNano ?? 0),
          attributes: attributesOf(s.attributes),
          events: (s.events ?? []).map((e) => ({ name: e.name ?? "", timeUnixNano: BigInt(e.timeUnixNano ?? 0), attributes: attributesOf(e.attributes) })),
          status: { code: s.status?.code ?? 0, message: s.status?.message ?? "" },
          resource,
        });
      }
    }
  }
  return out;
}

function hex(id: Buffer | string | undefined): string {
  if (id === undefined) return "";
  return typeof id === "string" ? id.toLowerCase() : id.toString("hex");
}

function attributesOf(list: KeyValue[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const kv of list ?? []) out[kv.key] = valueOf(kv.value);
  return out;
}

function valueOf(v: AnyValue | undefined): unknown {
  if (v === undefined) return undefined;
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.arrayValue !== undefined) return (v.arrayValue.values ?? []).map(valueOf);
  return undefined;
}
