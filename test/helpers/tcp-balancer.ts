/**
 * A TCP load balancer on 127.0.0.1, standing in for a Kubernetes ClusterIP Service
 * (kube-proxy) or any L4 balancer: each new connection goes to the next backend in turn
 * and stays on it for its whole life, which is why long-lived HTTP/2 connections stick to
 * the replicas they first reached. Backends can be added while it runs (a scale-up).
 */
import { connect, createServer, type Socket } from "node:net";

export interface TcpBalancer {
  readonly port: number;
  /** Backends (ports on 127.0.0.1), in rotation order. */
  readonly backends: readonly number[];
  /** Adds a backend to the rotation: new connections may go to it, existing ones stay. */
  add(port: number): void;
  /** Connections accepted so far, per backend port. */
  connectionsTo(port: number): number;
  close(): Promise<void>;
}

export async function startTcpBalancer(initial: readonly number[]): Promise<TcpBalancer> {
  const backends = [...initial];
  const accepted = new Map<number, number>();
  const sockets = new Set<Socket>();
  let next = 0;
  const track = (s: Socket): void => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  };
  const server = createServer((client) => {
    const port = backends[next++ % backends.length]!;
    accepted.set(port, (accepted.get(port) ?? 0) + 1);
    const backend = connect(port, "127.0.0.1");
    track(client);
    track(backend);
    // Either side failing or closing ends both, as a balancer's connection tracking does.
    client.on("error", () => backend.destroy());
    backend.on("error", () => client.destroy());
    client.on("close", () => backend.destroy());
    backend.on("close", () => client.destroy());
    client.pipe(backend).pipe(client);
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const a = server.address();
      resolve(typeof a === "object" && a !== null ? a.port : 0);
    });
  });
  return {
    port,
    backends,
    add: (p) => void backends.push(p),
    connectionsTo: (p) => accepted.get(p) ?? 0,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}
