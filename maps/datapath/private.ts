/**
 * A datapath loaded privately: fresh maps, nothing pinned. For BPF_PROG_TEST_RUN tests and
 * `skeinctl policy simulate`, which must run the real programs without touching a node's state.
 */
import { DisposalStack, RawMap, type Program } from "../../loader/index.js";
import { ConfigMap } from "../config.js";
import { ConntrackMap } from "../conntrack.js";
import { DECISION_MAP, DecisionMap } from "../decision.js";
import { ENDPOINTS_MAP, EndpointsMap, endpointsCodec } from "../endpoints.js";
import { EVENTS_MAP } from "../events.js";
import { IPCACHE_MAP, IpcacheMap, ipcacheCodec } from "../ipcache.js";
import { METRICS_MAP, MetricsMap } from "../metrics.js";
import { PROGRAM_NAMES, type ProgramName } from "../pins.js";
import { POLICY_MAP, PolicyMap, policyCodec } from "../policy.js";
import { CONFIG_MAP, configCodec } from "../config.js";
import { CONNTRACK_MAP, conntrackCodec } from "../conntrack.js";
import { LB_AFFINITY_MAP, LbAffinityMap, lbAffinityCodec } from "../lb-affinity.js";
import { LB_BACKEND_MAP, LbBackendMap, lbBackendCodec } from "../lb-backend.js";
import { LB_FLOW_MAP, LbFlowMap, lbFlowCodec } from "../lb-flow.js";
import { LB_MAGLEV_MAP, LbMaglevMap, lbMaglevCodec } from "../lb-maglev.js";
import { LB_REVNAT_MAP, LbRevnatMap, lbRevnatCodec } from "../lb-revnat.js";
import { LB_SLOT_MAP, LbSlotMap, lbSlotCodec } from "../lb-slot.js";
import { LB_SVC_MAP, LbSvcMap, lbSvcCodec } from "../lb-svc.js";
import { openDatapathSpec, type DatapathOptions } from "./spec.js";

export class PrivateDatapath implements Disposable {
  readonly programs: Readonly<Record<ProgramName, Program>>;
  readonly endpoints: EndpointsMap;
  readonly ipcache: IpcacheMap;
  readonly policy: PolicyMap;
  readonly conntrack: ConntrackMap;
  readonly metrics: MetricsMap;
  readonly config: ConfigMap;
  /** Empty unless loaded with settings.recordDecisions. */
  readonly decision: DecisionMap;
  readonly events: RawMap;
  /** The Service maps (bpf/maps/lb-*.h). */
  readonly lb: {
    svc: LbSvcMap;
    slot: LbSlotMap;
    backend: LbBackendMap;
    revnat: LbRevnatMap;
    affinity: LbAffinityMap;
    maglev: LbMaglevMap;
    flow: LbFlowMap;
  };
  readonly #stack: DisposalStack;

  private constructor(init: Omit<PrivateDatapath, "close" | typeof Symbol.dispose>, stack: DisposalStack) {
    this.programs = init.programs;
    this.endpoints = init.endpoints;
    this.ipcache = init.ipcache;
    this.policy = init.policy;
    this.conntrack = init.conntrack;
    this.metrics = init.metrics;
    this.config = init.config;
    this.decision = init.decision;
    this.events = init.events;
    this.lb = init.lb;
    this.#stack = stack;
  }

  /** Loads the object privately. Throws VerifierError, SysError. The caller closes the result. */
  static load(options: DatapathOptions = {}): PrivateDatapath {
    const stack = new DisposalStack();
    try {
      // A failed load leaves the spec to us.
      using spec = openDatapathSpec(options);
      const loaded = stack.use(spec.load());
      const program = (name: ProgramName) => stack.use(loaded.program(name));
      const programs = Object.fromEntries(PROGRAM_NAMES.map((n) => [n, program(n)])) as Record<
        ProgramName,
        Program
      >;
      const dp = new PrivateDatapath(
        {
          programs,
          endpoints: stack.use(new EndpointsMap(loaded.map(ENDPOINTS_MAP), endpointsCodec)),
          ipcache: stack.use(new IpcacheMap(loaded.map(IPCACHE_MAP), ipcacheCodec)),
          policy: stack.use(new PolicyMap(loaded.map(POLICY_MAP), policyCodec)),
          conntrack: stack.use(new ConntrackMap(loaded.map(CONNTRACK_MAP), conntrackCodec)),
          metrics: stack.use(new MetricsMap(loaded.map(METRICS_MAP))),
          config: stack.use(new ConfigMap(loaded.map(CONFIG_MAP), configCodec)),
          decision: stack.use(new DecisionMap(loaded.map(DECISION_MAP))),
          events: stack.use(loaded.map(EVENTS_MAP)),
          lb: {
            svc: stack.use(new LbSvcMap(loaded.map(LB_SVC_MAP), lbSvcCodec)),
            slot: stack.use(new LbSlotMap(loaded.map(LB_SLOT_MAP), lbSlotCodec)),
            backend: stack.use(new LbBackendMap(loaded.map(LB_BACKEND_MAP), lbBackendCodec)),
            revnat: stack.use(new LbRevnatMap(loaded.map(LB_REVNAT_MAP), lbRevnatCodec)),
            affinity: stack.use(new LbAffinityMap(loaded.map(LB_AFFINITY_MAP), lbAffinityCodec)),
            maglev: stack.use(new LbMaglevMap(loaded.map(LB_MAGLEV_MAP), lbMaglevCodec)),
            flow: stack.use(new LbFlowMap(loaded.map(LB_FLOW_MAP), lbFlowCodec)),
          },
        },
        stack,
      );
      // The maps and programs hold their own fds; the libbpf object is no longer needed.
      loaded.close();
      return dp;
    } catch (err) {
      stack.dispose();
      throw err;
    }
  }

  close(): void {
    this.#stack.dispose();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
