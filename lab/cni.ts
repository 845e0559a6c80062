/**
 * skein-cni run the way a container runtime runs it: inside the node's network namespace, the
 * parameters in CNI_* environment variables, the node's plugin configuration (what its agent wrote)
 * on stdin, the result on stdout.
 */
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { CNI_CONF_FILE, type SkeinConflist } from "../maps/cni-conflist.js";
import { CNI_SOCKET_ENV } from "../maps/cni-server.js";
import { DIST } from "./dist.js";
import type { LabNode, LabPod } from "./state.js";
import { netnsPath } from "./topology.js";

export type CniCommand = "ADD" | "DEL" | "CHECK";

/** What a runtime tells the plugin about one pod's sandbox. */
export interface CniAttachment {
  containerId: string;
  /** Path of the pod's network namespace. */
  netns: string;
  namespace: string;
  name: string;
}

/** The skein-cni to use: the self-contained installed form when built, the dev shim otherwise. */
export function defaultCniBin(): string {
  const installed = join(DIST, "cni-install", "skein-cni");
  return existsSync(installed) ? installed : join(DIST, "bin", "skein-cni");
}

/** True once `node`'s agent has written the plugin configuration (before that, no CNI call works). */
export function hasPluginConfig(node: LabNode): boolean {
  return existsSync(join(node.confDir, CNI_CONF_FILE));
}

/** The plugin configuration the node's agent wrote (what a runtime would read). Throws when there is none. */
export function pluginConfig(node: LabNode): Record<string, unknown> {
  const conflist = JSON.parse(readFileSync(join(node.confDir, CNI_CONF_FILE), "utf8")) as SkeinConflist;
  return { cniVersion: conflist.cniVersion, name: conflist.name, ...conflist.plugins[0] };
}

/** The attachment of a lab pod, as the runtime that made it would name it again for DEL. */
export function attachmentOf(pod: LabPod): CniAttachment {
  return {
    containerId: pod.containerId,
    netns: netnsPath(pod.netns),
    namespace: pod.namespace,
    name: pod.name,
  };
}

/**
 * Runs `cniBin` with `command` for `pod` inside `node`'s namespace, `extra` merged into the
 * configuration, SKEIN_CNI_SOCKET naming the node's CNI server when it has one. Resolves with the parsed result ({} when the plugin prints nothing); throws with
 * the plugin's error when it exits non-zero.
 */
export async function invokeCni(
  cniBin: string,
  node: LabNode,
  command: CniCommand,
  pod: CniAttachment,
  extra: Record<string, unknown> = {},
): Promise<Record<string, unknown>> {
  const env = {
    PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin",
    CNI_COMMAND: command,
    CNI_CONTAINERID: pod.containerId,
    CNI_NETNS: pod.netns,
    CNI_IFNAME: "eth0",
    CNI_PATH: dirname(cniBin),
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${pod.namespace};K8S_POD_NAME=${pod.name}`,
    // The node's resident server (the shim forwards there; without one it runs the Node plugin).
    ...(node.cniSocket === undefined ? {} : { [CNI_SOCKET_ENV]: node.cniSocket }),
  };
  const config = { ...pluginConfig(node), ...extra };
  const r = await run("nsenter", [`--net=${netnsPath(node.netns)}`, cniBin], {
    input: JSON.stringify(config),
    env,
  });
  const out = r.stdout.trim() === "" ? {} : (JSON.parse(r.stdout) as Record<string, unknown>);
  if (r.code !== 0)
    throw new Error(
      `skein-cni ${command} ${pod.namespace}/${pod.name}: ${r.stdout.trim() || r.stderr.trim()}`,
    );
  return out;
}

function run(
  file: string,
  args: string[],
  opts: { input: string; env: NodeJS.ProcessEnv },
): Promise<{ stdout: string; stderr: string; code: number }> {
  return new Promise((resolvePromise) => {
    const child = execFile(file, args, { env: opts.env, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === "number" ? err.code : 1;
      resolvePromise({ stdout, stderr, code });
    });
    child.stdin?.end(opts.input);
  });
}
