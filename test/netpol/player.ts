/**
 * Plays conformance scenarios against a cluster: the simulator (BPF_PROG_TEST_RUN) or the lab (real
 * packets). Both sides implement ScenarioCluster; the player applies each step, probes the 9×9
 * matrix, compares with upstream's expectation (retrying while the dataplane converges) and restores
 * the model afterwards. A cluster that also probes through each pod's Service (upstream's
 * `s-<namespace>-<pod>`) gets the same expectation checked for that matrix too, in the same pass.
 */
import type { V1NetworkPolicy } from "@kubernetes/client-node";
import { ALL_PODS, namespaceLabels, podLabels, splitPodKey, MODEL } from "./model.js";
import type { Matrix } from "./reachability.js";
import type { Probe, Scenario } from "./scenario-types.js";

export interface ScenarioCluster {
  applyPolicy(policy: V1NetworkPolicy): Promise<void>;
  deletePolicy(namespace: string, name: string): Promise<void>;
  /** Sets exactly these labels on the namespace. */
  setNamespaceLabels(name: string, labels: Record<string, string>): Promise<void>;
  /** Sets exactly these labels on the pod. */
  setPodLabels(namespace: string, name: string, labels: Record<string, string>): Promise<void>;
  /** Every pod to every pod (ALL_PODS × ALL_PODS) for one probe. */
  probeMatrix(probe: Probe): Promise<Matrix>;
  /**
   * Every pod to every pod's Service ClusterIP (`s-<namespace>-<pod>`, selecting just that pod) for
   * one probe; undefined when the cluster does not probe Services for it (e.g. SCTP).
   */
  probeServiceMatrix?(probe: Probe): Promise<Matrix | undefined>;
}

/** How the destination was addressed: its pod IP, or its Service's ClusterIP. */
export type ProbeVia = "pod IP" | "Service";

export interface Mismatch {
  step: string;
  probe: Probe;
  from: string;
  to: string;
  expected: boolean;
  actual: boolean;
  loopback: boolean;
  via: ProbeVia;
}

export interface PlayOptions {
  /** How long to keep re-probing a step whose matrix differs (the dataplane converging). */
  convergeMs: number;
  /** Do not wait for loopback pairs to converge (set where they cannot, e.g. real pods). */
  ignoreLoopback?: boolean;
}

function diff(expected: Matrix, actual: Matrix, step: string, probe: Probe, via: ProbeVia): Mismatch[] {
  const out: Mismatch[] = [];
  for (const from of ALL_PODS)
    for (const to of ALL_PODS) {
      const e = expected[from]?.[to] ?? false;
      const a = actual[from]?.[to] ?? false;
      if (e !== a) out.push({ step, probe, from, to, expected: e, actual: a, loopback: from === to, via });
    }
  return out;
}

/** Plays one scenario and restores the model. Returns every mismatch (loopback ones flagged). */
export async function playScenario(
  cluster: ScenarioCluster,
  scenario: Scenario,
  options: PlayOptions,
): Promise<Mismatch[]> {
  const nsLabels = new Map(MODEL.namespaces.map((n) => [n, namespaceLabels(n)]));
  const pLabels = new Map(ALL_PODS.map((k) => [k, podLabels(splitPodKey(k).pod)]));
  const applied = new Map<string, { namespace: string; name: string }>();
  const touchedNs = new Set<string>();
  const touchedPods = new Set<string>();
  const mismatches: Mismatch[] = [];
  try {
    for (const step of scenario.steps) {
      for (const d of step.delete ?? []) {
        await cluster.deletePolicy(d.namespace, d.name);
        applied.delete(`${d.namespace}/${d.name}`);
      }
      for (const p of step.apply ?? []) {
        await cluster.applyPolicy(p);
        const namespace = p.metadata?.namespace ?? "default";
        applied.set(`${namespace}/${p.metadata?.name ?? ""}`, { namespace, name: p.metadata?.name ?? "" });
      }
      for (const l of step.labelNamespace ?? []) {
        const merged = { ...nsLabels.get(l.name), ...l.labels };
        nsLabels.set(l.name, merged);
        touchedNs.add(l.name);
        await cluster.setNamespaceLabels(l.name, merged);
      }
      for (const l of step.labelPod ?? []) {
        const key = `${l.namespace}/${l.name}`;
        const merged = { ...pLabels.get(key), ...l.labels };
        pLabels.set(key, merged);
        touchedPods.add(key);
        await cluster.setPodLabels(l.namespace, l.name, merged);
      }
      for (const { probe, expected } of step.probes) {
        const deadline = Date.now() + options.convergeMs;
        let found: Mismatch[];
        for (;;) {
          const [byIp, byService] = await Promise.all([
            cluster.probeMatrix(probe),
            cluster.probeServiceMatrix?.(probe),
          ]);
          found = diff(expected, byIp, step.description, probe, "pod IP");
          if (byService !== undefined)
            found.push(...diff(expected, byService, step.description, probe, "Service"));
          const real = found.filter(
            (m) => !(m.loopback && (scenario.ignoreLoopback === true || options.ignoreLoopback === true)),
          );
          if (real.length === 0 || Date.now() > deadline) break;
          await new Promise((r) => setTimeout(r, 200));
        }
        mismatches.push(...found);
      }
    }
  } finally {
    for (const { namespace, name } of applied.values()) await cluster.deletePolicy(namespace, name);
    for (const n of touchedNs) await cluster.setNamespaceLabels(n, namespaceLabels(n));
    for (const k of touchedPods) {
      const { namespace, pod } = splitPodKey(k);
      await cluster.setPodLabels(namespace, pod, podLabels(pod));
    }
  }
  return mismatches;
}

export function describeMismatches(scenario: Scenario, ms: readonly Mismatch[]): string {
  return (
    ms
      .slice(0, 20)
      .map(
        (m) =>
          `  [${m.step}] ${m.probe.protocol}/${m.probe.port} ${m.from} → ${m.to}${m.via === "Service" ? " (Service)" : ""}: expected ${m.expected ? "allowed" : "denied"}, got ${m.actual ? "allowed" : "denied"}${m.loopback ? " (loopback)" : ""}`,
      )
      .join("\n") +
    (ms.length > 20 ? `\n  … ${ms.length - 20} more` : "") +
    `\n  (${scenario.name})`
  );
}
