/** Kubeconfig files pointing kubectl and client-node at a lab API server. */
import { writeFile } from "node:fs/promises";
import { stringify } from "yaml";

/** Context, cluster and user name used in the kubeconfig written here. */
export const KUBECONFIG_CONTEXT = "skein-lab";

/**
 * The kubeconfig text for `url` (no credentials), namespace `default`. For an `http:` URL the
 * cluster is marked `insecure-skip-tls-verify`: client-node refuses plain HTTP otherwise
 * ("HTTP protocol is not allowed when skipTLSVerify is not set"); kubectl does not mind.
 */
export function kubeconfigYaml(url: string): string {
  const parsed = new URL(url);
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:")
    throw new TypeError(`not an http(s) URL: ${url}`);
  return stringify({
    apiVersion: "v1",
    kind: "Config",
    preferences: {},
    clusters: [
      {
        name: KUBECONFIG_CONTEXT,
        cluster:
          parsed.protocol === "http:" ? { server: url, "insecure-skip-tls-verify": true } : { server: url },
      },
    ],
    users: [{ name: KUBECONFIG_CONTEXT, user: {} }],
    contexts: [
      {
        name: KUBECONFIG_CONTEXT,
        context: { cluster: KUBECONFIG_CONTEXT, user: KUBECONFIG_CONTEXT, namespace: "default" },
      },
    ],
    "current-context": KUBECONFIG_CONTEXT,
  });
}

/**
 * Writes a kubeconfig for `url` to `path` (mode 0600, replacing any file there). Context name
 * {@link KUBECONFIG_CONTEXT}. Rejects on a bad URL or a write error.
 */
export async function writeKubeconfig(path: string, url: string): Promise<void> {
  await writeFile(path, kubeconfigYaml(url), { mode: 0o600 });
}
