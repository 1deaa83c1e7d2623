/**
 * `smarttrade serve` as users run it: a separate process on the embedded PostgreSQL, on a free
 * loopback port, in a temporary data directory; the local token read from that directory.
 */
import { ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { protoPath as healthProtoPath } from "grpc-health-check";

/** clients/node, from dist/test/ where this module runs. */
export const CLIENT_ROOT = resolve(__dirname, "..", "..");
export const REPO_ROOT = resolve(CLIENT_ROOT, "..", "..");
export const PROTOS = join(REPO_ROOT, "protos");
const SERVE_BIN = process.env.SMARTTRADE_BIN ?? join(REPO_ROOT, ".venv", "bin", "smarttrade");
const SERVING_WITHIN_MS = 60_000;

export interface RunningServer {
  address: string;
  token: string;
  /** SIGTERM, then wait for a clean exit (status 0); removes the data directory. */
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() =>
        typeof address === "object" && address ? resolvePort(address.port) : reject(new Error("no port")),
      );
    });
  });
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolveExit) => child.once("exit", (code) => resolveExit(code)));
}

/** grpc.health.v1.Health, loaded dynamically from the proto that grpc-health-check ships. */
interface HealthClient extends grpc.Client {
  check(
    request: { service: string },
    options: Partial<grpc.CallOptions>,
    callback: (error: grpc.ServiceError | null, answer: { status: string }) => void,
  ): grpc.ClientUnaryCall;
}

function healthClient(address: string): HealthClient {
  const definition = protoLoader.loadSync(healthProtoPath, { keepCase: true, enums: String });
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
  };
  return new loaded.grpc.health.v1.Health(address, grpc.credentials.createInsecure()) as unknown as HealthClient;
}

function healthStatus(client: HealthClient): Promise<string> {
  return new Promise((resolveStatus) => {
    client.check({ service: "" }, { deadline: Date.now() + 1000 }, (error, answer) =>
      resolveStatus(error ? "UNREACHABLE" : answer.status),
    );
  });
}

/** Starts the service and resolves once its health says SERVING. */
export async function startServer(): Promise<RunningServer> {
  const dataDir = mkdtempSync(join(tmpdir(), "smarttrade-node-e2e-"));
  const address = `127.0.0.1:${await freePort()}`;
  // A clean quick start: no tokens or database from the caller's environment.
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("SMARTTRADE_")));
  const child = spawn(SERVE_BIN, ["serve", "--data-dir", join(dataDir, "data"), "--listen", address], {
    env,
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const spawnFailure = new Promise<never>((_, reject) => child.once("error", reject));
  spawnFailure.catch(() => undefined);

  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    const code = await exited(child);
    rmSync(dataDir, { recursive: true, force: true });
    if (code !== 0) throw new Error(`smarttrade serve exited with ${code}:\n${stderr}`);
  };

  const health = healthClient(address);
  try {
    const deadline = Date.now() + SERVING_WITHIN_MS;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`smarttrade serve exited early (${child.exitCode}):\n${stderr}`);
      const state = await Promise.race([healthStatus(health), spawnFailure]);
      if (state === "SERVING") break;
      if (Date.now() > deadline) throw new Error(`not SERVING within ${SERVING_WITHIN_MS} ms:\n${stderr}`);
      await new Promise((wake) => setTimeout(wake, 100));
    }
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  } finally {
    health.close();
  }
  const token = readFileSync(join(dataDir, "data", "local-token"), "utf8").trim();
  return { address, token, stop };
}
