/**
 * The lab's Kubernetes-API-compatible HTTP server (plain `node:http`): discovery, OpenAPI v2,
 * list/watch/get/create/update/patch/delete for the resources in resources.ts, Tables for kubectl.
 * Plain HTTP, no authentication: bind it to loopback.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { parse as parseYaml } from "yaml";
import { apiGroup, apiGroupList, apiResourceList, coreApiVersions, versionInfo } from "./discovery.js";
import {
  ApiError,
  badRequest,
  internalError,
  methodNotAllowed,
  pathNotFound,
  tooLarge,
  unsupportedMediaType,
} from "./errors.js";
import { isJsonObject, objectAt, stringAt, type JsonObject, type JsonValue } from "./json.js";
import { openApiV2Json, openApiV2Protobuf } from "./openapi.js";
import { patchTypeOf } from "./patch.js";
import { resourceByName, type ResourceInfo } from "./resources.js";
import { applySeed, readSeed } from "./seed.js";
import { LabStore, listItemJson } from "./store.js";
import { toTable, type IncludeObject } from "./table.js";
import { bookmarkObject, type StoreWatch, type WatchEvent } from "./watch-cache.js";

const COMMA = Buffer.from(",");
const LIST_END = Buffer.from("]}\n");

/** Log sink: one complete line per call, without trailing newline. */
export type LogSink = (line: string) => void;

/** Options for {@link startLabApiServer}. */
export interface LabApiServerOptions {
  /** Address to bind (default 127.0.0.1). */
  host?: string;
  /** Port (default 0: the kernel picks one; read it from the result). */
  port?: number;
  /** YAML/JSON files or directories to seed the store from before listening. */
  seed?: string | readonly string[];
  /** Objects to seed (after the files), e.g. built by the lab orchestrator. */
  seedObjects?: readonly JsonValue[];
  /** Watch events retained per resource type (default 1000). */
  history?: number;
  /** Default watch duration when the client sends no timeoutSeconds (default 1800 s). */
  watchTimeoutSeconds?: number;
  /** Interval of BOOKMARK events for watches with allowWatchBookmarks (default 60 000 ms). */
  bookmarkIntervalMs?: number;
  /** A watch whose unsent output exceeds this is closed, as the real server drops slow watchers (default 16 MiB). */
  maxWatchBufferBytes?: number;
  /** Largest accepted request body (default 3 MiB, the real server's limit). */
  maxBodyBytes?: number;
  /** Where Services' ClusterIPs come from (default 10.96.0.0/16). */
  serviceCidr?: string;
  /** First resourceVersion (default: time-based; see {@link LabStoreOptions}). */
  firstResourceVersion?: number;
  /** Where log lines go (default: stderr). */
  log?: LogSink;
  /** Log every request, not only lifecycle events and errors (default false). */
  logRequests?: boolean;
}

/** A running server. `close()` is idempotent; the caller must call it. */
export interface LabApiServer {
  /** `http://host:port`, ready for a kubeconfig. */
  readonly url: string;
  readonly port: number;
  readonly host: string;
  /** The live store: create/patch/delete here and every watcher sees it. */
  readonly store: LabStore;
  /**
   * Ends every open watch stream now (fault injection for the lab: clients re-watch from their
   * last resourceVersion, and relist when that has expired). Returns how many were ended.
   */
  closeWatches(): number;
  /** Ends every watch, closes every connection and the listening socket. Never rejects. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

interface Query {
  get(name: string): string | undefined;
  bool(name: string): boolean | undefined;
}

function queryOf(url: URL): Query {
  return {
    get: (name) => url.searchParams.get(name) ?? undefined,
    bool: (name) => {
      const v = url.searchParams.get(name);
      if (v === null) return undefined;
      if (v === "true" || v === "1" || v === "True" || v === "") return true;
      if (v === "false" || v === "0" || v === "False") return false;
      throw badRequest(`invalid value for ${name}: "${v}" (want true or false)`);
    },
  };
}

interface TableRequest {
  version: string;
}

/** Finds `application/json;as=Table;g=meta.k8s.io;v=v1|v1beta1` in an Accept header. */
function tableRequested(accept: string | undefined): TableRequest | undefined {
  if (accept === undefined) return undefined;
  for (const part of accept.split(",")) {
    const [type, ...params] = part.split(";").map((s) => s.trim());
    if (type !== "application/json") continue;
    const p = new Map(params.map((kv) => kv.split("=").map((s) => s.trim()) as [string, string]));
    if (
      p.get("as") === "Table" &&
      p.get("g") === "meta.k8s.io" &&
      (p.get("v") === "v1" || p.get("v") === "v1beta1")
    ) {
      return { version: p.get("v") as string };
    }
  }
  return undefined;
}

type Route =
  | {
      kind: "resource";
      info: ResourceInfo;
      namespace: string | undefined;
      name: string | undefined;
      sub: "status" | undefined;
      watchPath: boolean;
    }
  | { kind: "doc"; body: () => JsonObject | undefined };

/** Maps the segments after `/api/v1` or `/apis/<g>/<v>` to a resource route. */
function resourceRoute(group: string, version: string, rest: string[]): Route | undefined {
  let watchPath = false;
  if (rest[0] === "watch") {
    watchPath = true;
    rest = rest.slice(1);
  }
  const mk = (
    resource: string | undefined,
    namespace: string | undefined,
    name: string | undefined,
    sub: string | undefined,
  ): Route | undefined => {
    const info = resource === undefined ? undefined : resourceByName(resource);
    if (info === undefined || info.group !== group || info.version !== version) return undefined;
    if (sub !== undefined && !(sub === "status" && info.hasStatus)) return undefined;
    if (namespace !== undefined && !info.namespaced) return undefined;
    if (namespace === undefined && info.namespaced && name !== undefined) return undefined;
    return {
      kind: "resource",
      info,
      namespace,
      name,
      sub: sub === "status" ? "status" : undefined,
      watchPath,
    };
  };
  const [a, b, c, d, e] = rest;
  switch (rest.length) {
    case 1:
      return mk(a, undefined, undefined, undefined);
    case 2:
      return mk(a, undefined, b, undefined);
    case 3:
      if (a === "namespaces" && group === "") return mk(c, b, undefined, undefined) ?? mk(a, undefined, b, c);
      if (a === "namespaces") return mk(c, b, undefined, undefined);
      return mk(a, undefined, b, c);
    case 4:
      return a === "namespaces" ? mk(c, b, d, undefined) : undefined;
    case 5:
      return a === "namespaces" ? mk(c, b, d, e) : undefined;
    default:
      return undefined;
  }
}

function route(path: string, serverAddress: string): Route | undefined {
  const segs = path
    .split("/")
    .filter((s) => s !== "")
    .map((s) => decodeURIComponent(s));
  const [first, second, third] = segs;
  if (first === "version" && segs.length === 1) return { kind: "doc", body: versionInfo };
  if (first === "api") {
    if (segs.length === 1) return { kind: "doc", body: () => coreApiVersions(serverAddress) };
    if (second !== "v1") return undefined;
    if (segs.length === 2) return { kind: "doc", body: () => apiResourceList("", "v1") };
    return resourceRoute("", "v1", segs.slice(2));
  }
  if (first === "apis") {
    if (segs.length === 1) return { kind: "doc", body: apiGroupList };
    if (second === undefined) return undefined;
    if (segs.length === 2) return { kind: "doc", body: () => apiGroup(second) };
    if (third === undefined) return undefined;
    if (segs.length === 3) return { kind: "doc", body: () => apiResourceList(second, third) };
    return resourceRoute(second, third, segs.slice(3));
  }
  return undefined;
}

const JSON_TYPE = "application/json";
// What kube-openapi answers with: the "@" of the requested type is not a valid MIME token, and
// client-go fails to parse a response Content-Type containing it.
const PROTOBUF_OPENAPI_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

function logLine(sink: LogSink, level: string, msg: string, fields: Record<string, unknown> = {}): void {
  const rest = Object.entries(fields)
    .map(([k, v]) => {
      const s = typeof v === "string" ? v : JSON.stringify(v);
      const text = typeof s === "string" ? s : "null";
      return `${k}=${/[\s"=]/.test(text) ? JSON.stringify(text) : text}`;
    })
    .join(" ");
  sink(`${new Date().toISOString()} ${level} lab-apiserver: ${msg}${rest === "" ? "" : ` ${rest}`}`);
}

class RequestHandler {
  readonly #store: LabStore;
  readonly #opts: Required<
    Pick<
      LabApiServerOptions,
      "watchTimeoutSeconds" | "bookmarkIntervalMs" | "maxWatchBufferBytes" | "maxBodyBytes" | "logRequests"
    >
  >;
  readonly #log: LogSink;
  readonly #watches = new Set<ServerResponse>();
  serverAddress = "";
  #openApiProto: Buffer | undefined;

  constructor(store: LabStore, options: LabApiServerOptions, log: LogSink) {
    this.#store = store;
    this.#log = log;
    this.#opts = {
      watchTimeoutSeconds: options.watchTimeoutSeconds ?? 1800,
      bookmarkIntervalMs: options.bookmarkIntervalMs ?? 60_000,
      maxWatchBufferBytes: options.maxWatchBufferBytes ?? 16 * 1024 * 1024,
      maxBodyBytes: options.maxBodyBytes ?? 3 * 1024 * 1024,
      logRequests: options.logRequests ?? false,
    };
  }

  get watchResponses(): ReadonlySet<ServerResponse> {
    return this.#watches;
  }

  log(level: string, msg: string, fields?: Record<string, unknown>): void {
    logLine(this.#log, level, msg, fields);
  }

  /** Entry point; never throws, never rejects. */
  handle(req: IncomingMessage, res: ServerResponse): void {
    const started = Date.now();
    res.on("finish", () => {
      if (this.#opts.logRequests)
        this.log("info", "request", {
          method: req.method,
          url: req.url,
          code: res.statusCode,
          ms: Date.now() - started,
        });
    });
    this.#dispatch(req, res).catch((err: unknown) => {
      this.#fail(req, res, err);
    });
  }

  #fail(req: IncomingMessage, res: ServerResponse, err: unknown): void {
    try {
      this.#failUnsafe(req, res, err);
    } catch (second) {
      // Answering failed too (socket gone): nothing left to tell this client.
      this.log("warn", "could not send an error response", {
        url: req.url,
        error: second instanceof Error ? second.message : String(second),
      });
      res.destroy();
    }
  }

  #failUnsafe(req: IncomingMessage, res: ServerResponse, err: unknown): void {
    const apiErr = err instanceof ApiError ? err : internalError(err);
    if (apiErr.code >= 500)
      this.log("error", "request failed", {
        method: req.method,
        url: req.url,
        error: err instanceof Error ? (err.stack ?? err.message) : String(err),
      });
    if (res.headersSent) {
      res.destroy();
      return;
    }
    this.#send(res, apiErr.code, apiErr.toStatus(), false);
  }

  #send(res: ServerResponse, code: number, body: JsonValue, pretty: boolean): void {
    this.#sendText(res, code, JSON.stringify(body, null, pretty ? 2 : undefined) + "\n");
  }

  #sendText(res: ServerResponse, code: number, text: string | Uint8Array): void {
    res.writeHead(code, {
      "Content-Type": JSON_TYPE,
      "Content-Length": Buffer.byteLength(text),
      "Cache-Control": "no-cache, private",
    });
    res.end(text);
  }

  async #readBody(req: IncomingMessage): Promise<Buffer> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      const buf = chunk as Buffer;
      size += buf.length;
      if (size > this.#opts.maxBodyBytes) throw tooLarge(this.#opts.maxBodyBytes);
      chunks.push(buf);
    }
    return Buffer.concat(chunks);
  }

  /** Parses a JSON or YAML body; 400 when malformed, 415 for another media type. */
  async #parseBody(req: IncomingMessage, allowEmpty: boolean): Promise<JsonValue | undefined> {
    const raw = await this.#readBody(req);
    const contentType =
      (req.headers["content-type"] ?? JSON_TYPE).split(";")[0]?.trim().toLowerCase() ?? JSON_TYPE;
    const text = raw.toString("utf8");
    if (text.trim() === "") {
      if (allowEmpty) return undefined;
      throw badRequest("the request body is empty");
    }
    const isYaml =
      contentType === "application/yaml" ||
      contentType === "application/x-yaml" ||
      contentType === "text/yaml";
    const isJson = contentType === JSON_TYPE || contentType.endsWith("+json") || contentType === "*/*";
    if (!isYaml && !isJson) throw unsupportedMediaType(contentType);
    try {
      if (isJson) return JSON.parse(text) as JsonValue;
      const docs = parseYaml(text, { maxAliasCount: 100 }) as JsonValue;
      return docs;
    } catch (err) {
      const why = err instanceof Error ? err.message.split("\n")[0] : String(err);
      throw badRequest(`the request body is not valid ${isJson ? "JSON" : "YAML"}: ${why}`, { cause: err });
    }
  }

  async #dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let url: URL;
    try {
      // Concatenated, not resolved: a path starting with "//" must not become a host name.
      url = new URL(`http://lab.invalid${req.url ?? "/"}`);
    } catch {
      throw badRequest("malformed request URL");
    }
    const query = queryOf(url);
    const pretty = query.bool("pretty") === true;
    const method = req.method ?? "GET";
    const path = url.pathname.replace(/\/+$/, "") || "/";

    if (path === "/healthz" || path === "/livez" || path === "/readyz") {
      if (method !== "GET" && method !== "HEAD") throw methodNotAllowed();
      res.writeHead(200, { "Content-Type": "text/plain; charset=utf-8", "Content-Length": 2 });
      res.end("ok");
      return;
    }
    if (path === "/openapi/v2") {
      if (method !== "GET") throw methodNotAllowed();
      this.#serveOpenApi(req, res, pretty);
      return;
    }
    let r: Route | undefined;
    try {
      r = route(path, this.serverAddress);
    } catch (err) {
      throw badRequest(`malformed path: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (r === undefined) throw pathNotFound();
    if (r.kind === "doc") {
      if (method !== "GET") throw methodNotAllowed();
      const body = r.body();
      if (body === undefined) throw pathNotFound();
      this.#send(res, 200, body, pretty);
      return;
    }
    await this.#serveResource(req, res, r, query, pretty, method);
  }

  #serveOpenApi(req: IncomingMessage, res: ServerResponse, pretty: boolean): void {
    const accept = req.headers.accept ?? "";
    if (/protobuf/i.test(accept)) {
      this.#openApiProto ??= openApiV2Protobuf();
      res.writeHead(200, {
        "Content-Type": PROTOBUF_OPENAPI_TYPE,
        "Content-Length": this.#openApiProto.length,
      });
      res.end(this.#openApiProto);
      return;
    }
    this.#send(res, 200, openApiV2Json(), pretty);
  }

  async #serveResource(
    req: IncomingMessage,
    res: ServerResponse,
    r: Extract<Route, { kind: "resource" }>,
    query: Query,
    pretty: boolean,
    method: string,
  ): Promise<void> {
    const { info, namespace, name, sub } = r;
    const store = this.#store;
    const ref = { namespace };
    const table = tableRequested(req.headers.accept);
    const includeText = query.get("includeObject") ?? "Metadata";
    if (includeText !== "None" && includeText !== "Metadata" && includeText !== "Object")
      throw badRequest(`invalid includeObject "${includeText}"`);
    const include: IncludeObject = includeText;
    const send = (code: number, obj: JsonObject): void => {
      if (table !== undefined && obj.kind === info.kind) {
        this.#send(
          res,
          code,
          toTable(
            info,
            [obj],
            { resourceVersion: stringAt(objectAt(obj, "metadata"), "resourceVersion") ?? "" },
            { include, version: table.version },
          ),
          pretty,
        );
      } else {
        this.#send(res, code, obj, pretty);
      }
    };

    if (name === undefined) {
      // Collection.
      const selection = {
        namespace,
        labelSelector: query.get("labelSelector"),
        fieldSelector: query.get("fieldSelector"),
      };
      if (method === "GET") {
        if (r.watchPath || query.bool("watch") === true) {
          this.#serveWatch(req, res, info, selection, query, table, include);
          return;
        }
        const limitText = query.get("limit");
        const limit = limitText === undefined || limitText === "" ? undefined : Number(limitText);
        if (limit !== undefined && !Number.isInteger(limit)) throw badRequest(`invalid limit "${limitText}"`);
        const page = store.list(info.name, { ...selection, limit, continue: query.get("continue") });
        const listMeta: JsonObject = { resourceVersion: page.resourceVersion };
        if (page.continue !== undefined) listMeta.continue = page.continue;
        if (page.remainingItemCount !== undefined) listMeta.remainingItemCount = page.remainingItemCount;
        if (table !== undefined) {
          this.#send(
            res,
            200,
            toTable(info, page.items, listMeta, { include, version: table.version }),
            pretty,
          );
        } else if (!pretty) {
          // The bytes JSON.stringify would make, from each item's cached bytes.
          const head = JSON.stringify({
            kind: info.listKind,
            apiVersion: info.apiVersion,
            metadata: listMeta,
          });
          const parts: Uint8Array[] = [Buffer.from(`${head.slice(0, -1)},"items":[`)];
          page.stored.forEach((o, i) => {
            if (i > 0) parts.push(COMMA);
            parts.push(listItemJson(o));
          });
          parts.push(LIST_END);
          this.#sendText(res, 200, Buffer.concat(parts));
        } else {
          this.#send(
            res,
            200,
            { kind: info.listKind, apiVersion: info.apiVersion, metadata: listMeta, items: page.items },
            pretty,
          );
        }
        return;
      }
      if (method === "POST") {
        if (info.namespaced && namespace === undefined) throw methodNotAllowed();
        const body = await this.#parseBody(req, false);
        send(201, store.create(info.name, body as JsonValue, ref));
        return;
      }
      if (method === "DELETE" && info.verbs.includes("deletecollection")) {
        await this.#parseBody(req, true);
        const deleted = store.deleteCollection(info.name, selection);
        this.#send(
          res,
          200,
          {
            kind: info.listKind,
            apiVersion: info.apiVersion,
            metadata: { resourceVersion: store.resourceVersion },
            items: deleted,
          },
          pretty,
        );
        return;
      }
      throw methodNotAllowed();
    }

    if (sub === "status" && method !== "GET" && method !== "PUT" && method !== "PATCH")
      throw methodNotAllowed();
    switch (method) {
      case "GET":
        send(200, store.getOrThrow(info.name, name, ref));
        return;
      case "PUT": {
        const body = await this.#parseBody(req, false);
        send(200, store.update(info.name, body as JsonValue, { ...ref, name, subresource: sub }));
        return;
      }
      case "PATCH": {
        const contentType = req.headers["content-type"] ?? "";
        const type = patchTypeOf(contentType);
        if (type === undefined) {
          await this.#readBody(req);
          throw unsupportedMediaType(contentType);
        }
        const body = await this.#parseBody(req, false);
        send(200, store.patch(info.name, name, body as JsonValue, type, { ...ref, subresource: sub }));
        return;
      }
      case "DELETE": {
        const body = await this.#parseBody(req, true);
        const opts = isJsonObject(body) ? body : {};
        const pre = objectAt(opts, "preconditions");
        send(
          200,
          store.delete(info.name, name, {
            ...ref,
            preconditions: { uid: stringAt(pre, "uid"), resourceVersion: stringAt(pre, "resourceVersion") },
          }),
        );
        return;
      }
      default:
        throw methodNotAllowed();
    }
  }

  #serveWatch(
    req: IncomingMessage,
    res: ServerResponse,
    info: ResourceInfo,
    selection: {
      namespace: string | undefined;
      labelSelector: string | undefined;
      fieldSelector: string | undefined;
    },
    query: Query,
    table: TableRequest | undefined,
    include: IncludeObject,
  ): void {
    const timeoutText = query.get("timeoutSeconds");
    let timeoutSeconds = this.#opts.watchTimeoutSeconds;
    if (timeoutText !== undefined && timeoutText !== "") {
      timeoutSeconds = Number(timeoutText);
      if (!Number.isFinite(timeoutSeconds) || timeoutSeconds < 0)
        throw badRequest(`invalid timeoutSeconds "${timeoutText}"`);
    }
    const bookmarks = query.bool("allowWatchBookmarks") === true;
    const sendInitialEvents = query.bool("sendInitialEvents");
    let first = true;
    // Events produced while the store registers the watch (initial and replayed ones) wait here
    // until the headers are set, so a rejected watch can still get a plain error response.
    let pending: string[] | undefined = [];
    const write = (type: string, object: JsonObject): void => {
      if (res.writableEnded || res.destroyed) return;
      let obj = object;
      if (table !== undefined && type !== "BOOKMARK" && type !== "ERROR") {
        obj = toTable(
          info,
          [object],
          { resourceVersion: stringAt(objectAt(object, "metadata"), "resourceVersion") ?? "" },
          {
            include,
            version: table.version,
            noHeaders: !first,
          },
        );
        first = false;
      }
      const line = JSON.stringify({ type, object: obj }) + "\n";
      if (pending !== undefined) {
        pending.push(line);
        return;
      }
      res.write(line);
      if (res.writableLength > this.#opts.maxWatchBufferBytes) {
        this.log("warn", "closing watch: client does not keep up", {
          resource: info.name,
          buffered: res.writableLength,
        });
        res.end();
      }
    };
    const bookmark = (extra?: JsonObject): void => {
      write("BOOKMARK", bookmarkObject(info, this.#store.resourceVersion, extra));
    };

    const start = (): void => {
      res.writeHead(200, {
        "Content-Type": JSON_TYPE,
        "Cache-Control": "no-cache, private",
        "Transfer-Encoding": "chunked",
      });
      res.flushHeaders();
      const queued = pending ?? [];
      pending = undefined;
      for (const line of queued) res.write(line);
    };

    let watch: StoreWatch | undefined;
    try {
      watch = this.#store.watch(
        info.name,
        { ...selection, resourceVersion: query.get("resourceVersion"), sendInitialEvents },
        (ev: WatchEvent) => {
          write(ev.type, ev.object);
        },
      );
    } catch (err) {
      if (err instanceof ApiError && err.code === 410) {
        this.log("info", "watch expired", {
          resource: info.name,
          resourceVersion: query.get("resourceVersion"),
          message: err.message,
        });
        // Like the real watch cache: 200, then one ERROR event carrying the Status, then EOF.
        // client-node's ListWatch resets its resourceVersion on it and relists when the stream ends.
        start();
        write("ERROR", err.toStatus());
        res.end();
        return;
      }
      throw err;
    }
    if (sendInitialEvents === true && bookmarks) bookmark({ "k8s.io/initial-events-end": "true" });
    start();
    this.#watches.add(res);
    const bookmarkTimer = bookmarks
      ? setInterval(() => {
          bookmark();
        }, this.#opts.bookmarkIntervalMs)
      : undefined;
    const timeout =
      timeoutSeconds > 0
        ? setTimeout(() => {
            if (bookmarks) bookmark();
            res.end();
          }, timeoutSeconds * 1000)
        : undefined;
    const cleanup = (): void => {
      watch.close();
      clearInterval(bookmarkTimer);
      clearTimeout(timeout);
      this.#watches.delete(res);
    };
    res.once("finish", cleanup);
    res.once("close", cleanup);
    req.once("close", () => {
      if (!res.writableEnded) res.end();
    });
  }
}

/**
 * Seeds a {@link LabStore} and starts serving it over HTTP. Resolves once listening. Rejects
 * (having released everything) when seeding fails or the address cannot be bound. The caller owns
 * the result and must `close()` it.
 */
export async function startLabApiServer(options: LabApiServerOptions = {}): Promise<LabApiServer> {
  const host = options.host ?? "127.0.0.1";
  const sink: LogSink = options.log ?? ((line) => process.stderr.write(line + "\n"));
  const storeOptions: ConstructorParameters<typeof LabStore>[0] = {};
  if (options.history !== undefined) storeOptions.history = options.history;
  if (options.firstResourceVersion !== undefined)
    storeOptions.firstResourceVersion = options.firstResourceVersion;
  if (options.serviceCidr !== undefined) storeOptions.serviceCidr = options.serviceCidr;
  const store = new LabStore(storeOptions);
  const seedPaths =
    options.seed === undefined ? [] : typeof options.seed === "string" ? [options.seed] : [...options.seed];
  const seeded = applySeed(store, [
    ...(await readSeed(seedPaths)),
    ...(options.seedObjects ?? []).map((o, i) => {
      if (!isJsonObject(o)) throw new Error(`seedObjects[${i}] is not an object`);
      return { object: o, source: `seedObjects[${i}]` };
    }),
  ]);

  const handler = new RequestHandler(store, options, sink);
  const server: Server = createServer((req, res) => {
    handler.handle(req, res);
  });
  const sockets = new Set<Socket>();
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  server.on("clientError", (err, socket) => {
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
    else socket.destroy();
    handler.log("warn", "client error", { error: err.message });
  });
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => {
      store.close();
      reject(err);
    };
    server.once("error", onError);
    server.listen(options.port ?? 0, host, () => {
      server.off("error", onError);
      resolve();
    });
  });
  server.on("error", (err) => {
    handler.log("error", "server error", { error: err.message });
  });
  const port = (server.address() as AddressInfo).port;
  const hostForUrl = host.includes(":") ? `[${host}]` : host;
  handler.serverAddress = `${hostForUrl}:${port}`;
  const url = `http://${hostForUrl}:${port}`;
  handler.log("info", "listening", { url, seeded, resourceVersion: store.resourceVersion });

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      store.close();
      for (const res of handler.watchResponses) res.end();
      server.close(() => {
        handler.log("info", "closed", { url });
        resolve();
      });
      server.closeIdleConnections();
      // Whatever is still open after the watch streams ended (a slow client) is cut.
      setImmediate(() => {
        for (const s of sockets) s.destroy();
      });
    });
    return closing;
  };
  const closeWatches = (): number => {
    const open = [...handler.watchResponses];
    for (const res of open) res.end();
    return open.length;
  };
  return { url, port, host, store, closeWatches, close, [Symbol.asyncDispose]: close };
}
