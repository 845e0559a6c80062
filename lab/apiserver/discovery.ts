/**
 * Discovery documents (`/version`, `/api`, `/api/v1`, `/apis`, `/apis/<group>`,
 * `/apis/<group>/<version>`) in the classic (unaggregated) format. Newer kubectl asks for
 * aggregated discovery (`as=APIGroupDiscoveryList`) first; answering `application/json` with the
 * classic body makes client-go fall back to it, as with any pre-1.26 server.
 */
import type { JsonObject } from "./json.js";
import { RESOURCES, resourcesOf } from "./resources.js";

/** The version this server reports: recent enough for current clients, close to what it mimics. */
export const SERVER_VERSION = { major: "1", minor: "30", gitVersion: "v1.30.0-skein-lab" } as const;

/** `/version`. */
export function versionInfo(): JsonObject {
  return {
    major: SERVER_VERSION.major,
    minor: SERVER_VERSION.minor,
    gitVersion: SERVER_VERSION.gitVersion,
    gitCommit: "0000000000000000000000000000000000000000",
    gitTreeState: "clean",
    buildDate: "2024-01-01T00:00:00Z",
    goVersion: "go1.22.0",
    compiler: "gc",
    platform: "linux/amd64",
  };
}

/** `/api`: the core group's versions. */
export function coreApiVersions(serverAddress: string): JsonObject {
  return {
    kind: "APIVersions",
    versions: ["v1"],
    serverAddressByClientCIDRs: [{ clientCIDR: "0.0.0.0/0", serverAddress }],
  };
}

function groups(): string[] {
  return [...new Set(RESOURCES.map((r) => r.group).filter((g) => g !== ""))];
}

/** `/apis/<group>`; undefined for a group not served. */
export function apiGroup(group: string): JsonObject | undefined {
  const versions = [...new Set(RESOURCES.filter((r) => r.group === group).map((r) => r.version))];
  if (group === "" || versions.length === 0) return undefined;
  const list = versions.map((v) => ({ groupVersion: `${group}/${v}`, version: v }));
  return {
    kind: "APIGroup",
    apiVersion: "v1",
    name: group,
    versions: list,
    preferredVersion: list[0] ?? null,
  };
}

/** `/apis`: every non-core group. */
export function apiGroupList(): JsonObject {
  const list: JsonObject[] = [];
  for (const g of groups()) {
    const doc = apiGroup(g);
    if (doc !== undefined)
      list.push({
        name: doc.name ?? g,
        versions: doc.versions ?? [],
        preferredVersion: doc.preferredVersion ?? null,
      });
  }
  return { kind: "APIGroupList", apiVersion: "v1", groups: list };
}

/** `/api/v1` or `/apis/<group>/<version>`; undefined for a group version not served. */
export function apiResourceList(group: string, version: string): JsonObject | undefined {
  const infos = resourcesOf(group, version);
  if (infos.length === 0) return undefined;
  const resources: JsonObject[] = [];
  for (const r of infos) {
    const entry: JsonObject = {
      name: r.name,
      singularName: r.singular,
      namespaced: r.namespaced,
      kind: r.kind,
      verbs: [...r.verbs],
      shortNames: [...r.shortNames],
    };
    if (r.categories.length > 0) entry.categories = [...r.categories];
    resources.push(entry);
    if (r.hasStatus) {
      resources.push({
        name: `${r.name}/status`,
        singularName: "",
        namespaced: r.namespaced,
        kind: r.kind,
        verbs: ["get", "patch", "update"],
      });
    }
  }
  return {
    kind: "APIResourceList",
    apiVersion: "v1",
    groupVersion: group === "" ? version : `${group}/${version}`,
    resources,
  };
}
