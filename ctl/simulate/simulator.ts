/**
 * Offline what-if for NetworkPolicy: Kubernetes objects compiled by the agent's own engine into a
 * privately loaded datapath (real maps, nothing pinned), and each probe packet run through the real
 * programs with BPF_PROG_TEST_RUN — egress on the source pod's hook (skn_from_pod), ingress on the
 * destination pod's hook (skn_to_pod). Conntrack is cleared between probes, so every probe is a new
 * flow.
 *
 * A probe to `svc/namespace/name` goes through the Service's translation first: the Service and its
 * EndpointSlices are resolved by the agent's own builder (policy/lb-builder.ts) to the ClusterIP
 * frontend of the probe's port and protocol, and each of its backends is probed in turn (address
 * and target port after translation, as the datapath judges policy on the backend), each with its
 * own verdict. The probe is allowed when every backend is; a Service without a usable backend is
 * denied ("no backend": the datapath rejects).
 */
import type {
  KubernetesObject,
  V1EndpointSlice,
  V1Namespace,
  V1NetworkPolicy,
  V1Pod,
  V1Service,
} from "@kubernetes/client-node";
import { LbProto } from "../../maps/lb-svc.js";
import { buildLb, LbIdAllocator } from "../../policy/lb-builder.js";
import { endpointSliceView, serviceView } from "../../policy/lb-views.js";
import { ipcacheCodec, ipcacheKeyString } from "../../maps/ipcache.js";
import { isIPv4 } from "../../maps/net.js";
import { PROGRAMS } from "../../maps/pins.js";
import { policyCodec, policyKeyString } from "../../maps/policy.js";
import { reservedIdentityName } from "../../maps/identities.js";
import type { Decision } from "../../maps/decision.js";
import { PrivateDatapath } from "../../maps/datapath/private.js";
import { probeFrame } from "../../maps/packet.js";
import { PolicyEngine } from "../../policy/engine.js";
import { compileSelector, matches } from "../../policy/selector.js";
import { buildIpcache } from "../../policy/ipcache-builder.js";
import { MapReconciler } from "../../maps/reconciler.js";

export type SimProtocol = "TCP" | "UDP" | "SCTP";

export interface Probe {
  /** `namespace/pod` (or a bare IPv4 for traffic from outside the cluster). */
  from: string;
  /** `namespace/pod` or a bare IPv4. */
  to: string;
  port: number;
  protocol: SimProtocol;
}

export interface SideVerdict {
  /** enforced-allowed, denied, or open (no policy selects the pod in this direction). */
  verdict: "allowed" | "denied" | "open" | "not-applicable";
  /** The rule that allowed it: `namespace/policy ingress[i]`. */
  rule?: string;
  /** Policies selecting the pod in this direction. */
  selectedBy?: string[];
  /** The datapath's verdict reason (drop_policy, fwd_stack, ...). */
  datapathReason?: string;
  /** Why, in a sentence, when denied. */
  why?: string;
}

export interface SimResult {
  from: string;
  to: string;
  port: number;
  protocol: SimProtocol;
  allowed: boolean;
  /** Which side denied it, when denied ("service": no backend to translate to). */
  deniedBy?: "egress" | "ingress" | "service";
  egress: SideVerdict;
  ingress: SideVerdict;
  /** For `svc/namespace/name`: the frontend and each backend's own verdict, in slot order. */
  service?: {
    frontend: string;
    backends: {
      address: string;
      /** The backend's pod, when it is one of the objects. */
      pod?: string;
      allowed: boolean;
      deniedBy?: "egress" | "ingress";
      egress: SideVerdict;
      ingress: SideVerdict;
    }[];
    why?: string;
  };
}

/** The prefix that names a Service in a probe's `to`. */
export const SERVICE_PREFIX = "svc/";

const TC_ACT_SHOT = 2;
const SIM_IFINDEX = 1; // lo: BPF_PROG_TEST_RUN wants an interface that exists in our namespace
const SIM_NODE = "simulated";

function id(obj: KubernetesObject): string {
  return `${obj.metadata?.namespace ?? "default"}/${obj.metadata?.name ?? ""}`;
}

/** The simulator. Owns a private datapath: close it. Throws when BPF cannot be loaded (not root). */
export class Simulator implements Disposable {
  readonly engine = new PolicyEngine({});
  readonly #dp: PrivateDatapath;
  readonly #ipcache: MapReconciler<
    import("../../maps/net.js").Prefix,
    import("../../maps/ipcache.js").IpcacheEntry
  >;
  readonly #policy: MapReconciler<
    import("../../maps/policy.js").PolicyKey,
    import("../../maps/policy.js").PolicyEntry
  >;
  readonly #pods = new Map<string, V1Pod>();
  readonly #policies = new Map<string, V1NetworkPolicy>();
  readonly #namespaces = new Map<string, V1Namespace>();
  readonly #services = new Map<string, V1Service>();
  readonly #slices = new Map<string, V1EndpointSlice>();
  #dirty = true;
  #sport = 40000;

  constructor() {
    this.#dp = PrivateDatapath.load({ settings: { recordDecisions: true } });
    this.#ipcache = new MapReconciler(this.#dp.ipcache, ipcacheCodec, ipcacheKeyString);
    this.#policy = new MapReconciler(this.#dp.policy, policyCodec, policyKeyString);
  }

  /** Adds or replaces Namespaces, Pods and NetworkPolicies; other kinds are ignored (returned). */
  apply(objects: readonly KubernetesObject[]): KubernetesObject[] {
    const ignored: KubernetesObject[] = [];
    for (const o of objects) {
      switch (o.kind) {
        case "Namespace":
          this.#namespaces.set(o.metadata?.name ?? "", o);
          this.engine.upsertNamespace(o);
          break;
        case "Pod":
          this.#pods.set(id(o), o);
          this.engine.upsertPod(o);
          break;
        case "NetworkPolicy":
          this.#policies.set(id(o), o);
          this.engine.upsertPolicy(o);
          break;
        case "Service":
          this.#services.set(id(o), o);
          break;
        case "EndpointSlice":
          this.#slices.set(id(o), o as V1EndpointSlice);
          break;
        case undefined:
        default:
          ignored.push(o);
      }
    }
    this.#dirty = true;
    return ignored;
  }

  /** Removes an object by kind and name. */
  delete(kind: "Namespace" | "Pod" | "NetworkPolicy", namespace: string, name: string): void {
    if (kind === "Namespace") {
      this.#namespaces.delete(name);
      this.engine.deleteNamespace(name);
    } else if (kind === "Pod") {
      this.#pods.delete(`${namespace}/${name}`);
      this.engine.deletePod(namespace, name);
    } else {
      this.#policies.delete(`${namespace}/${name}`);
      this.engine.deletePolicy(namespace, name);
    }
    this.#dirty = true;
  }

  /** Objects the engine rejected, and why. */
  errors(): readonly { object: string; message: string }[] {
    return this.engine.errors();
  }

  #sync(): void {
    if (!this.#dirty) return;
    const pods = [...this.#pods.values()].flatMap((p) => {
      const ip = p.status?.podIP;
      if (ip === undefined || !isIPv4(ip) || p.spec?.hostNetwork === true) return [];
      const ns = p.metadata?.namespace ?? "default";
      const name = p.metadata?.name ?? "";
      return [
        {
          ip,
          nodeName: SIM_NODE,
          identity: this.engine.podIdentity(ns, name) ?? 4,
          flags: this.engine.localFlags(ip),
        },
      ];
    });
    const ipc = this.#ipcache.apply(
      buildIpcache({
        localNodeName: SIM_NODE,
        localAddresses: [],
        nodes: [],
        pods,
        cidrs: this.engine.cidrPrefixes(),
      }),
    );
    const pol = this.#policy.apply(this.engine.desiredPolicy());
    if (ipc.failed + pol.failed > 0)
      throw new Error(`simulation maps could not be written: ${String(ipc.firstError ?? pol.firstError)}`);
    this.#dirty = false;
  }

  #address(who: string, role: "from" | "to"): { ip: string; pod?: V1Pod } {
    if (isIPv4(who)) return { ip: who };
    const key = who.includes("/") ? who : `default/${who}`;
    const pod = this.#pods.get(key);
    if (pod === undefined)
      throw new Error(
        `probe ${role} ${JSON.stringify(who)}: no such pod (give namespace/pod or an IPv4 address)`,
      );
    const ip = pod.status?.podIP;
    if (ip === undefined || !isIPv4(ip))
      throw new Error(`probe ${role} ${who}: the pod has no IPv4 status.podIP`);
    return { ip, pod };
  }

  #selectedBy(pod: V1Pod, direction: "ingress" | "egress"): string[] {
    const ns = pod.metadata?.namespace ?? "default";
    const labels = pod.metadata?.labels ?? {};
    const out: string[] = [];
    for (const np of this.#policies.values()) {
      if ((np.metadata?.namespace ?? "default") !== ns) continue;
      const types =
        np.spec?.policyTypes ?? (np.spec?.egress !== undefined ? ["Ingress", "Egress"] : ["Ingress"]);
      if (!types.includes(direction === "ingress" ? "Ingress" : "Egress")) continue;
      const sel = compileSelector(np.spec?.podSelector, "spec.podSelector");
      if (sel.ok && matches(sel.selector, labels)) out.push(id(np));
    }
    return out.sort();
  }

  #describeIdentity(identity: number): string {
    const reserved = reservedIdentityName(identity);
    if (reserved !== undefined) return reserved;
    const info = this.engine.identities().get(identity);
    if (info === undefined) return `identity ${identity}`;
    const labels = Object.entries(info.labels)
      .map(([k, v]) => `${k}=${v}`)
      .join(",");
    return `identity ${identity} (namespace ${info.namespace}${labels === "" ? "" : `, labels ${labels}`})`;
  }

  #ruleText(ruleId: number): string | undefined {
    const r = this.engine.rule(ruleId);
    return r === undefined ? undefined : `${r.namespace}/${r.policy} ${r.direction}[${r.index}]`;
  }

  #clearConntrack(): void {
    for (const k of [...this.#dp.conntrack.raw.keys()]) this.#dp.conntrack.raw.delete(k);
  }

  #side(direction: "ingress" | "egress", pod: V1Pod, retval: number, d: Decision, probe: Probe): SideVerdict {
    const selectedBy = this.#selectedBy(pod, direction);
    const enforced = selectedBy.length > 0;
    if (retval === TC_ACT_SHOT) {
      const who = direction === "egress" ? probe.from : probe.to;
      const peer = this.#describeIdentity(d.peerIdentity);
      const why =
        d.reason === "drop_policy"
          ? `${who} is selected for ${direction} by ${selectedBy.join(", ") || "(a policy)"}, and no rule allows ${direction === "egress" ? "to" : "from"} ${peer} on ${probe.protocol}/${probe.port}`
          : `dropped by the datapath: ${d.reason}`;
      return { verdict: "denied", selectedBy, datapathReason: d.reason, why };
    }
    const rule = this.#ruleText(d.ruleId);
    return {
      verdict: enforced ? "allowed" : "open",
      ...(rule === undefined ? {} : { rule }),
      ...(enforced ? { selectedBy } : {}),
      datapathReason: d.reason,
    };
  }

  /** Runs one probe through the programs. Throws for probes naming unknown pods or Services. */
  probe(probe: Probe): SimResult {
    return probe.to.startsWith(SERVICE_PREFIX) ? this.#probeService(probe) : this.#probeOne(probe);
  }

  /** The Service's translation (the agent's builder), then every backend probed on its own. */
  #probeService(probe: Probe): SimResult {
    const name = probe.to.slice(SERVICE_PREFIX.length);
    const key = name.includes("/") ? name : `default/${name}`;
    const svc = this.#services.get(key);
    if (svc === undefined)
      throw new Error(`probe to ${JSON.stringify(probe.to)}: no such Service (give svc/namespace/name)`);
    const view = serviceView(svc);
    const slices = [...this.#slices.values()].flatMap((s) => {
      const v = endpointSliceView(s);
      return v !== undefined && v.namespace === view.namespace && v.serviceName === view.name ? [v] : [];
    });
    const built = buildLb(
      { node: { nodeName: SIM_NODE, nodeAddresses: [] }, services: [view], endpointSlices: slices },
      new LbIdAllocator(),
    );
    const proto = LbProto[probe.protocol.toLowerCase() as "tcp" | "udp" | "sctp"];
    const origin = [...built.origins.values()].find(
      (o) => o.kind === "ClusterIP" && o.key.port === probe.port && o.key.proto === proto,
    );
    if (origin === undefined)
      throw new Error(
        `probe to ${probe.to}: the Service has no ClusterIP frontend on ${probe.protocol}/${probe.port}${built.problems.length > 0 ? ` (${built.problems.join("; ")})` : ""}`,
      );
    const frontend = `${origin.key.addr}:${origin.key.port}/${probe.protocol}`;
    const service: NonNullable<SimResult["service"]> = { frontend, backends: [] };
    const result: SimResult = {
      ...probe,
      allowed: true,
      egress: { verdict: "not-applicable" },
      ingress: { verdict: "not-applicable" },
      service,
    };
    for (const backendId of origin.backendIds) {
      const b = built.backend.get(String(backendId))?.entry;
      if (b === undefined) continue;
      const pod = [...this.#pods.values()].find((p) => p.status?.podIP === b.addr);
      const r = this.#probeOne({
        from: probe.from,
        to: pod === undefined ? b.addr : id(pod),
        port: b.port,
        protocol: probe.protocol,
      });
      service.backends.push({
        address: `${b.addr}:${b.port}`,
        ...(pod === undefined ? {} : { pod: id(pod) }),
        allowed: r.allowed,
        ...(r.deniedBy === undefined || r.deniedBy === "service" ? {} : { deniedBy: r.deniedBy }),
        egress: r.egress,
        ingress: r.ingress,
      });
    }
    if (service.backends.length === 0) {
      result.allowed = false;
      result.deniedBy = "service";
      service.why = `${probe.to} ${frontend} has no ready (or serving terminating) endpoint: the datapath rejects`;
      return result;
    }
    const denied = service.backends.find((b) => !b.allowed);
    // The overall sides: those of the first denied backend, else of the first backend.
    const shown = denied ?? service.backends[0];
    if (shown !== undefined) {
      result.egress = shown.egress;
      result.ingress = shown.ingress;
    }
    if (denied !== undefined) {
      result.allowed = false;
      result.deniedBy = denied.deniedBy ?? "ingress";
    }
    return result;
  }

  #probeOne(probe: Probe): SimResult {
    if (!Number.isInteger(probe.port) || probe.port < 1 || probe.port > 65535)
      throw new Error(`probe port must be 1..65535, not ${probe.port}`);
    if (!["TCP", "UDP", "SCTP"].includes(probe.protocol))
      throw new Error(`probe protocol must be TCP, UDP or SCTP, not ${probe.protocol}`);
    this.#sync();
    const src = this.#address(probe.from, "from");
    const dst = this.#address(probe.to, "to");
    const sport = (this.#sport = this.#sport >= 60000 ? 40000 : this.#sport + 1);
    const frame = probeFrame({
      protocol: probe.protocol,
      src: src.ip,
      dst: dst.ip,
      sport,
      dport: probe.port,
    });
    const result: SimResult = {
      ...probe,
      allowed: true,
      egress: { verdict: "not-applicable" },
      ingress: { verdict: "not-applicable" },
    };

    this.#clearConntrack();
    if (src.pod !== undefined) {
      // Only the source is an endpoint: from_pod then decides egress alone and hands the packet on.
      this.#dp.endpoints.set(src.ip, {
        ifindex: SIM_IFINDEX,
        flags: 0,
        mac: "02:00:00:00:00:01",
        hostMac: "02:00:00:00:00:02",
      });
      try {
        const r = this.#dp.programs[PROGRAMS.fromPod].testRun({ data: frame, ctx: { ifindex: SIM_IFINDEX } });
        result.egress = this.#side("egress", src.pod, r.retval, this.#dp.decision.last(), probe);
      } finally {
        this.#dp.endpoints.delete(src.ip);
      }
      this.#clearConntrack();
    }
    if (result.egress.verdict !== "denied" && dst.pod !== undefined) {
      const r = this.#dp.programs[PROGRAMS.toPod].testRun({ data: frame, ctx: { ifindex: SIM_IFINDEX } });
      result.ingress = this.#side("ingress", dst.pod, r.retval, this.#dp.decision.last(), probe);
      this.#clearConntrack();
    }
    if (result.egress.verdict === "denied") {
      result.allowed = false;
      result.deniedBy = "egress";
    } else if (result.ingress.verdict === "denied") {
      result.allowed = false;
      result.deniedBy = "ingress";
    }
    return result;
  }

  close(): void {
    this.#dp.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
