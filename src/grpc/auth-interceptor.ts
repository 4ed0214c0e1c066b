/**
 * Caller authentication on the gRPC port, as a grpc-js server interceptor: the key is
 * checked on the call's metadata, which arrives before its message, and a refused call
 * is answered UNAUTHENTICATED without `next`: the handler never runs, grpc-js never asks
 * for the message, so not a byte of it is buffered or decoded (grpc-js resumes the stream
 * only to drop what still arrives). Before, the key was checked in the handler, after
 * grpc-js had buffered and decoded up to MAX_REQUEST_BYTES for anyone.
 *
 * The check is KeyRing's (constant time). The key's name reaches the handler through a
 * WeakMap keyed by the call's Metadata object, the one grpc-js hands the handler as
 * `call.metadata`: a caller cannot forge it with a header of its own.
 *
 * Health and reflection stay open, as before.
 */
import { Metadata, ServerInterceptingCall, type ServerInterceptor } from "@grpc/grpc-js";
import type { KeyRing } from "../auth/key-ring.js";
import { GatewayError } from "../core/errors.js";
import { refuseCall, type RefusalOptions } from "./refusal.js";

/** Services callers reach without a key (their requests are kept small: request-size-cap.ts). */
export const OPEN_SERVICES: ReadonlySet<string> = new Set(["grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"]);

const keyNames = new WeakMap<Metadata, string>();

/** The name of the key the interceptor accepted for the call whose metadata this is. */
export function keyNameOf(metadata: Metadata): string | undefined {
  return keyNames.get(metadata);
}

export interface AuthInterceptorOptions extends RefusalOptions {
  readonly keys: KeyRing;
}

export function authInterceptor(options: AuthInterceptorOptions): ServerInterceptor {
  return (method, call) => {
    const [, service = "", name] = method.path.split("/");
    if (OPEN_SERVICES.has(service)) return new ServerInterceptingCall(call);
    const started = performance.now();
    return new ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, pass) => {
            const authorization = metadata.get("authorization")[0];
            let keyName: string;
            try {
              keyName = options.keys.authenticate(typeof authorization === "string" ? authorization : undefined);
            } catch (err) {
              refuseCall(call, metadata, GatewayError.from(err), name, started, options);
              return; // no `pass`: the handler never starts, the message is never read
            }
            keyNames.set(metadata, keyName);
            pass(metadata);
          },
        }),
    });
  };
}
