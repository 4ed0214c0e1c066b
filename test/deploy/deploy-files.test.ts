/**
 * deploy/ against the code. Docker is not available where this was written, so the image
 * is never built here; instead every claim the files make is checked: each environment
 * variable is one src/config.ts reads (with a value it accepts), each port and probe is
 * one the gateway serves (probed on a running gateway started with the Deployment's own
 * environment), the image's command is the one the README documents, its Node major is
 * package.json's, and its runtime layout (the COPY --from=build paths) starts the gateway
 * and passes its HEALTHCHECK.
 */
import { execFile } from "node:child_process";
import { cp, mkdtemp, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { createHash } from "node:crypto";
import { credentials } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { HealthCheckResponse_ServingStatus, HealthClient, type HealthCheckResponse } from "../../gen/grpc/health/v1/health.js";
import { ENV_NAMES, loadConfig } from "../../src/config.js";
import { matchRoute } from "../../src/http/routes.js";
import { listening, ROOT, spawnLogged } from "../helpers/gateway-process.js";
import { startHarness, type Harness } from "../helpers/harness.js";
import { raw } from "../helpers/http.js";

const run = promisify(execFile);
const read = (path: string) => readFile(join(ROOT, path), "utf8");

/**
 * Variables the deploy files set for features other branches are adding. Allowed only
 * while src/config.ts does not read them yet; once it does they are checked like the rest.
 */
const known = (name: string): boolean => ENV_NAMES.includes(name);

// ---------------------------------------------------------------- Dockerfile

interface Instruction {
  readonly op: string;
  readonly args: string;
  /** Index of the stage (FROM) it belongs to. */
  readonly stage: number;
}

/** Instructions with line continuations joined and comments dropped (enough for this file). */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let stage = -1;
  const logical = text.replace(/\\\n/g, " ").split("\n");
  for (const line of logical) {
    const t = line.trim();
    if (t === "" || t.startsWith("#")) continue;
    const m = /^(\w+)\s+(.*)$/.exec(t);
    if (m === null) throw new Error(`cannot parse Dockerfile line: ${t}`);
    const op = m[1]!.toUpperCase();
    if (op === "FROM") stage++;
    out.push({ op, args: m[2]!.trim(), stage });
  }
  return out;
}

/** `KEY=value KEY2="value two"` → pairs. */
function envPairs(args: string): Array<[string, string]> {
  return [...args.matchAll(/(\w+)=("([^"]*)"|\S*)/g)].map((m) => [m[1]!, m[3] ?? m[2]!]);
}

/** COPY [--from=stage] [--chown=…] src… dest */
function copyOf(args: string): { from: string | undefined; sources: string[]; dest: string } {
  const words = args.split(/\s+/);
  const flags = words.filter((w) => w.startsWith("--"));
  const paths = words.filter((w) => !w.startsWith("--"));
  const from = flags.find((f) => f.startsWith("--from="))?.slice("--from=".length);
  return { from, sources: paths.slice(0, -1), dest: paths.at(-1)! };
}

/** The command the README says to run where a process manager is in charge. */
async function documentedStartCommand(): Promise<string[]> {
  const readme = await read("README.md");
  const m = /Where a process manager is in charge[\s\S]*?run \*\*`([^`]+)`\*\* directly/.exec(readme);
  if (m === null) throw new Error("README.md does not say which command to run under a process manager");
  return m[1]!.split(" ");
}

describe("deploy/Dockerfile", () => {
  let steps: Instruction[];
  let runtime: Instruction[];
  let args: Map<string, string>;
  beforeAll(async () => {
    steps = parseDockerfile(await read("deploy/Dockerfile"));
    const last = Math.max(...steps.map((s) => s.stage));
    runtime = steps.filter((s) => s.stage === last);
    args = new Map(steps.filter((s) => s.op === "ARG" && s.stage === -1).map((s) => s.args.split("=") as [string, string]));
  });
  const image = (from: string): string => from.split(/\s+/)[0]!.replace(/^\$\{(\w+)\}$/, (_, name: string) => args.get(name) ?? "");

  it("is multi-stage, on the Node major that package.json's engines names", async () => {
    const froms = steps.filter((s) => s.op === "FROM");
    expect(froms.length).toBeGreaterThanOrEqual(2);
    expect(froms[0]!.args).toMatch(/\sAS build$/);
    const engines = (JSON.parse(await read("package.json")) as { engines: { node: string } }).engines.node;
    const major = /(\d+)/.exec(engines)![1];
    for (const f of froms) expect(image(f.args)).toMatch(new RegExp(`^node:${major}-[a-z]+-slim$`));
  });

  it("runs as a non-root user, with node as PID 1 (exec form) running the command the README documents", async () => {
    const user = runtime.filter((s) => s.op === "USER").at(-1)?.args;
    expect(user).toBeDefined();
    expect(["root", "0", "0:0"]).not.toContain(user);
    const cmd = JSON.parse(runtime.filter((s) => s.op === "CMD").at(-1)!.args) as string[];
    expect(cmd).toEqual(await documentedStartCommand());
    expect(runtime.some((s) => s.op === "ENTRYPOINT")).toBe(false);
    expect(runtime.find((s) => s.op === "STOPSIGNAL")?.args ?? "SIGTERM").toBe("SIGTERM");
  });

  it("sets only variables the gateway reads, with values it accepts, and exposes its default ports", () => {
    const env = Object.fromEntries(runtime.filter((s) => s.op === "ENV").flatMap((s) => envPairs(s.args)));
    expect(Object.keys(env).length).toBeGreaterThan(0);
    expect(Object.keys(env).filter((k) => !known(k))).toEqual([]);
    const config = loadConfig({ ...env, CEREBRAS_API_KEY: "csk-x", GATEWAY_AUTH: "none" });
    expect(config.production).toBe(true);
    const exposed = runtime.filter((s) => s.op === "EXPOSE").flatMap((s) => s.args.split(/\s+/).map(Number));
    expect(exposed.sort()).toEqual([config.grpcPort, config.httpPort].sort());
  });

  it("builds from files that exist, and its .dockerignore lets each of them in", async () => {
    const ignore = (await read("deploy/Dockerfile.dockerignore")).split("\n").map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#"));
    const included = (path: string): boolean => {
      let inc = true;
      for (const rule of ignore) {
        const negated = rule.startsWith("!");
        const pattern = rule.replace(/^!/, "").replace(/\/$/, "");
        if (pattern === "*" || path === pattern || path.startsWith(`${pattern}/`)) inc = negated;
      }
      return inc;
    };
    const sources = steps.filter((s) => s.op === "COPY" && copyOf(s.args).from === undefined).flatMap((s) => copyOf(s.args).sources);
    expect(sources.length).toBeGreaterThan(0);
    for (const src of sources) {
      await expect(readdir(join(ROOT, src)).catch(() => read(src)), `${src} exists`).resolves.toBeDefined();
      expect(included(src), `${src} passes the .dockerignore`).toBe(true);
    }
  });

  it("its runtime layout (the COPY --from=build paths) starts the gateway, and its HEALTHCHECK passes against it and fails with nothing listening", { timeout: 60_000 }, async () => {
    const app = await mkdtemp(join(tmpdir(), "aigw-image-"));
    let gateway: ReturnType<typeof spawnLogged> | undefined;
    try {
      // /app/X in the build stage is X in this checkout after `npm run build` (npm test builds first).
      for (const s of runtime.filter((r) => r.op === "COPY")) {
        const c = copyOf(s.args);
        expect(c.from).toBe("build");
        for (const src of c.sources) {
          const from = join(ROOT, src.replace(/^\/app\//, ""));
          const to = join(app, c.dest === "./" ? src.split("/").at(-1)! : c.dest);
          // node_modules: a link (the build stage would hold only production dependencies).
          if (src.endsWith("node_modules")) await symlink(from, to);
          else await cp(from, to, { recursive: true });
        }
      }
      const env = Object.fromEntries(runtime.filter((r) => r.op === "ENV").flatMap((r) => envPairs(r.args)));
      // Loopback and free ports here; fake-upstream mode (no key) instead of production.
      const local = { ...env, NODE_ENV: "", GRPC_HOST: "127.0.0.1", HTTP_HOST: "127.0.0.1", GRPC_PORT: "0", HTTP_PORT: "0" };
      const [node, ...cmd] = JSON.parse(runtime.filter((r) => r.op === "CMD").at(-1)!.args) as string[];
      expect(node).toBe("node");
      gateway = spawnLogged(process.execPath, cmd, local, { cwd: app });
      const at = await listening(gateway, 20_000);
      const httpPort = at.http!.split(":").at(-1)!;

      const healthcheck = runtime.find((r) => r.op === "HEALTHCHECK")!.args;
      const probe = JSON.parse(/CMD\s+(\[.*\])$/.exec(healthcheck)![1]!) as string[];
      expect(probe[0]).toBe("node");
      const check = (port: string) =>
        run(process.execPath, probe.slice(1), { env: { PATH: process.env["PATH"] ?? "", HTTP_PORT: port }, timeout: 10_000 }).then(
          () => 0,
          (e: { code?: number }) => e.code ?? -1,
        );
      expect(await check(httpPort)).toBe(0);
      expect(await gateway.stop()).toBe(0);
      expect(await check(httpPort)).toBe(1);
    } finally {
      gateway?.kill();
      await rm(app, { recursive: true, force: true });
    }
  });
});

// ---------------------------------------------------------------- Kubernetes

interface Manifest {
  readonly kind: string;
  readonly metadata: { readonly name: string };
  readonly spec: Record<string, unknown>;
}
interface EnvVar {
  readonly name: string;
  readonly value?: string;
  readonly valueFrom?: { readonly secretKeyRef?: { readonly name: string; readonly key: string; readonly optional?: boolean } };
}
interface Probe {
  readonly httpGet?: { readonly path: string; readonly port: number | string; readonly scheme?: string };
  readonly grpc?: { readonly port: number; readonly service?: string };
}
interface Container {
  readonly name: string;
  readonly image: string;
  readonly ports: ReadonlyArray<{ readonly name: string; readonly containerPort: number }>;
  readonly env: readonly EnvVar[];
  readonly resources: { readonly requests?: Record<string, string>; readonly limits?: Record<string, string> };
  readonly startupProbe?: Probe;
  readonly livenessProbe?: Probe;
  readonly readinessProbe?: Probe;
}
interface PodTemplate {
  readonly metadata: { readonly labels: Record<string, string> };
  readonly spec: { readonly terminationGracePeriodSeconds: number; readonly containers: readonly Container[] };
}

const K8S = "deploy/kubernetes";

async function manifests(): Promise<Manifest[]> {
  const files = (await readdir(join(ROOT, K8S))).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml");
  const out: Manifest[] = [];
  for (const f of files) {
    for (const doc of parseAllDocuments(await read(`${K8S}/${f}`))) {
      expect(doc.errors, `${f} parses`).toEqual([]);
      out.push(doc.toJS() as Manifest);
    }
  }
  return out;
}

describe("deploy/kubernetes", () => {
  let all: Manifest[];
  let pod: PodTemplate;
  let container: Container;
  let plainEnv: Record<string, string>;
  beforeAll(async () => {
    all = await manifests();
    const deployments = all.filter((m) => m.kind === "Deployment");
    expect(deployments).toHaveLength(1);
    pod = deployments[0]!.spec["template"] as PodTemplate;
    expect(pod.spec.containers).toHaveLength(1);
    container = pod.spec.containers[0]!;
    plainEnv = Object.fromEntries(container.env.filter((e) => e.value !== undefined).map((e) => [e.name, e.value!]));
  });
  const portNamed = (port: number | string): number => (typeof port === "number" ? port : container.ports.find((p) => p.name === port)!.containerPort);

  it("kustomization.yaml lists every manifest in the directory", async () => {
    const kustomization = parseAllDocuments(await read(`${K8S}/kustomization.yaml`))[0]!.toJS() as { resources: string[] };
    const files = (await readdir(join(ROOT, K8S))).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml");
    expect([...kustomization.resources].sort()).toEqual(files.sort());
  });

  it("the Deployment sets only variables the gateway reads, with values it accepts; keys come from Secrets, never literals", () => {
    expect(container.env.map((e) => e.name).filter((n) => !known(n))).toEqual([]);
    for (const secret of ["CEREBRAS_API_KEY", "REDIS_URL"]) {
      const e = container.env.find((v) => v.name === secret);
      expect(e?.value, `${secret} is not a literal`).toBeUndefined();
      expect(e?.valueFrom?.secretKeyRef?.name, `${secret} comes from a Secret`).toBeDefined();
    }
    expect(container.env.filter((e) => /KEY|PASSWORD|TOKEN/.test(e.name) && e.value !== undefined && e.name !== "GATEWAY_KEYS_FILE")).toEqual([]);
    // Production with the Secret's values stood in for.
    expect(loadConfig({ ...plainEnv, CEREBRAS_API_KEY: "csk-x", GATEWAY_KEYS_FILE: undefined, GATEWAY_AUTH: "none" }).production).toBe(true);
  });

  it("container ports are GRPC_PORT and HTTP_PORT; both Services and the PDB select the pods and target named ports", () => {
    const config = loadConfig({ ...plainEnv, CEREBRAS_API_KEY: "csk-x", GATEWAY_KEYS_FILE: undefined, GATEWAY_AUTH: "none" });
    expect(portNamed("grpc")).toBe(config.grpcPort);
    expect(portNamed("http")).toBe(config.httpPort);
    const labels = pod.metadata.labels;
    const selects = (selector: Record<string, string>) => Object.entries(selector).every(([k, v]) => labels[k] === v);
    const services = all.filter((m) => m.kind === "Service");
    expect(services.map((s) => s.spec["clusterIP"] === "None")).toEqual(expect.arrayContaining([true, false]));
    for (const s of services) {
      expect(selects(s.spec["selector"] as Record<string, string>), `${s.metadata.name} selects the pods`).toBe(true);
      for (const p of s.spec["ports"] as Array<{ port: number; targetPort: string }>) {
        expect(container.ports.map((c) => c.name)).toContain(p.targetPort);
        expect(p.port).toBe(portNamed(p.targetPort));
      }
    }
    const headless = services.find((s) => s.spec["clusterIP"] === "None")!;
    expect((headless.spec["ports"] as Array<{ targetPort: string }>).map((p) => p.targetPort)).toContain("grpc");
    const pdb = all.find((m) => m.kind === "PodDisruptionBudget")!;
    expect(selects((pdb.spec["selector"] as { matchLabels: Record<string, string> }).matchLabels)).toBe(true);
    const deployment = all.find((m) => m.kind === "Deployment")!;
    expect(selects((deployment.spec["selector"] as { matchLabels: Record<string, string> }).matchLabels)).toBe(true);
    expect(Number(pdb.spec["maxUnavailable"])).toBeLessThan(Number(deployment.spec["replicas"]));
  });

  it("outlasts the drain before the kubelet's SIGKILL, rolls one pod at a time, and requests resources", () => {
    const config = loadConfig({ ...plainEnv, CEREBRAS_API_KEY: "csk-x", GATEWAY_KEYS_FILE: undefined, GATEWAY_AUTH: "none" });
    // Delay + grace + the in-band end of what is left (about 1 s) + room.
    expect(pod.spec.terminationGracePeriodSeconds * 1000).toBeGreaterThanOrEqual(config.shutdownDelayMs + config.shutdownGraceMs + 5000);
    const deployment = all.find((m) => m.kind === "Deployment")!;
    expect(deployment.spec["strategy"]).toMatchObject({ type: "RollingUpdate", rollingUpdate: { maxUnavailable: 0 } });
    expect(container.resources.requests).toMatchObject({ cpu: expect.any(String), memory: expect.any(String) });
    expect(container.resources.limits?.["memory"]).toBeDefined();
  });

  describe("every probe is one the gateway answers", () => {
    let h: Harness;
    let keysDir: string;
    beforeAll(async () => {
      // The Deployment's own environment, on loopback and free ports, with a keys file
      // standing in for the mounted Secret and the harness's fake standing in for Cerebras.
      keysDir = await mkdtemp(join(tmpdir(), "aigw-keys-"));
      const keysFile = join(keysDir, "keys.yaml");
      await writeFile(keysFile, `keys:\n  - name: probe-test\n    sha256: ${createHash("sha256").update("k").digest("hex")}\n`);
      h = await startHarness({ env: { ...plainEnv, GRPC_HOST: "127.0.0.1", HTTP_HOST: "127.0.0.1", GRPC_PORT: "0", HTTP_PORT: "0", GATEWAY_KEYS_FILE: keysFile } });
    });
    afterAll(async () => {
      await h.close();
      await rm(keysDir, { recursive: true, force: true });
    });

    const probes = (): Array<[string, Probe]> =>
      (["startupProbe", "livenessProbe", "readinessProbe"] as const).filter((k) => container[k] !== undefined).map((k) => [k, container[k]!]);
    const live = (port: number | string): { grpc: boolean; port: number } => {
      const p = portNamed(port);
      if (p === Number(plainEnv["GRPC_PORT"])) return { grpc: true, port: h.gateway.grpcPort };
      if (p === Number(plainEnv["HTTP_PORT"])) return { grpc: false, port: h.gateway.httpPort! };
      throw new Error(`probe port ${port} is neither GRPC_PORT nor HTTP_PORT`);
    };

    it("has a gRPC health probe and HTTP liveness and readiness probes", () => {
      expect(probes().some(([, p]) => p.grpc !== undefined)).toBe(true);
      expect(container.livenessProbe?.httpGet).toBeDefined();
      expect(container.readinessProbe?.httpGet?.path).toBe("/readyz");
    });

    it("each HTTP probe's path is a public GET route served on its port, answering 200", async () => {
      for (const [name, p] of probes().filter(([, q]) => q.httpGet !== undefined)) {
        const target = live(p.httpGet!.port);
        expect(target.grpc, `${name} is on the HTTP port`).toBe(false);
        const route = matchRoute("GET", p.httpGet!.path);
        expect(route.kind === "route" && route.route.public === true, `${name}: ${p.httpGet!.path} is a public route`).toBe(true);
        expect((await raw(target.port, { method: "GET", path: p.httpGet!.path })).status, name).toBe(200);
      }
    });

    it("each gRPC probe's service is SERVING on the gRPC port", async () => {
      for (const [name, p] of probes().filter(([, q]) => q.grpc !== undefined)) {
        const target = live(p.grpc!.port);
        expect(target.grpc, `${name} is on the gRPC port`).toBe(true);
        const health = new HealthClient(`127.0.0.1:${target.port}`, credentials.createInsecure());
        try {
          const res = await new Promise<HealthCheckResponse>((resolve, reject) => health.check({ service: p.grpc!.service ?? "" }, (e, r) => (e ? reject(e) : resolve(r))));
          expect(res.status, name).toBe(HealthCheckResponse_ServingStatus.SERVING);
        } finally {
          health.close();
        }
      }
    });
  });
});

describe("README", () => {
  it("has a Configuration row for every variable the gateway reads", async () => {
    const readme = await read("README.md");
    const table = readme.slice(readme.indexOf("## Configuration"), readme.indexOf("## Development"));
    const documented = new Set([...table.matchAll(/`([A-Z][A-Z0-9_]+)`/g)].map((m) => m[1]!));
    expect(ENV_NAMES.filter((n) => !documented.has(n))).toEqual([]);
  });
});
