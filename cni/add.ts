/**
 * ADD: wire a pod as DESIGN.md "Pod wiring" says. Each step records its undo; a failure runs them
 * in reverse, so a failed ADD leaves no reservation, veth, route, neighbour, qdisc or endpoint.
 */
import { parseIPv4 } from "../maps/net.js";
import { CniError, ErrorCode, describe } from "./errors.js";
import { OVERLAY_OVERHEAD } from "./config.js";
import type { AddStep, VerbContext } from "./context.js";
import { IpRange, IpamStore } from "./ipam.js";
import type { PodWiring } from "./kernel.js";
import { GATEWAY_IP, hostVethName, randomMac } from "./names.js";
import { SCOPE_LINK, mergeResults, type CniResult } from "./spec.js";
import { trace } from "./trace.js";

/** Uplink MTU assumed when the node has no default route and the configuration sets no `mtu`. */
export const FALLBACK_UPLINK_MTU = 1500;

/** The one address this attachment asks for, if any: runtimeConfig/args.cni `ips`, then CNI_ARGS IP. */
function requestedAddress(ctx: VerbContext): string | undefined {
  const ips = ctx.config.requests.ips;
  if (ips.length > 1)
    throw new CniError(
      ErrorCode.unsupportedField,
      `ips: ${JSON.stringify(ips)}`,
      "skein-cni assigns exactly one IPv4 address per attachment",
    );
  const fromArgs = ctx.invocation.args.get("IP");
  if (ips[0] !== undefined) return ips[0];
  if (fromArgs === undefined || fromArgs === "") return undefined;
  try {
    parseIPv4(fromArgs.split("/")[0] ?? "");
  } catch {
    throw new CniError(ErrorCode.invalidEnvironment, `CNI_ARGS: IP is not an IPv4 address`, fromArgs);
  }
  return fromArgs.split("/")[0];
}

function requestedMac(ctx: VerbContext): string | undefined {
  const fromArgs = ctx.invocation.args.get("MAC");
  if (ctx.config.requests.mac !== undefined) return ctx.config.requests.mac;
  if (fromArgs === undefined || fromArgs === "") return undefined;
  if (
    !/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(fromArgs) ||
    (Number.parseInt(fromArgs.slice(0, 2), 16) & 1) === 1
  )
    throw new CniError(ErrorCode.invalidEnvironment, "CNI_ARGS: MAC is not a unicast MAC address", fromArgs);
  return fromArgs.toLowerCase();
}

function checkNetns(ctx: VerbContext): void {
  const { netns } = ctx.invocation;
  switch (ctx.kernel.netnsState(netns)) {
    case "ok":
      return;
    case "missing":
      throw new CniError(ErrorCode.unknownContainer, `network namespace ${netns} does not exist`);
    case "not-netns":
      throw new CniError(ErrorCode.invalidEnvironment, `CNI_NETNS: ${netns} is not a network namespace`);
    case "own":
      throw new CniError(
        ErrorCode.invalidEnvironment,
        "CNI_NETNS: the plugin's own network namespace is not a container's",
      );
  }
}

/** The attachment as a CNI result (version-neutral). */
export function wiringResult(w: PodWiring): CniResult {
  return {
    interfaces: [
      { name: w.hostIfname, mac: w.hostMac, mtu: w.mtu },
      { name: w.podIfname, mac: w.podMac, mtu: w.mtu, sandbox: w.netns },
    ],
    ips: [{ address: `${w.podIp}/32`, gateway: GATEWAY_IP, interface: 1 }],
    routes: [
      { dst: `${GATEWAY_IP}/32`, scope: SCOPE_LINK },
      { dst: "0.0.0.0/0", gw: GATEWAY_IP },
    ],
  };
}

/**
 * Runs ADD. Returns the result (merged with prevResult when chained). Throws CniError: 3/4 for a
 * bad netns, 11 when the datapath is not loaded (nothing changed), 101 IPAM, 102 interfaces,
 * 100 datapath; after undoing every step taken.
 */
export function add(ctx: VerbContext): CniResult {
  const { kernel, invocation, config } = ctx;
  checkNetns(ctx);
  const missing = kernel.missingPins(config.bpffsRoot);
  if (missing.length > 0)
    throw new CniError(
      ErrorCode.tryAgainLater,
      `Skein datapath is not loaded under ${config.bpffsRoot}`,
      `missing pins: ${missing.join(", ")}`,
    );
  const hostIfname = hostVethName(invocation.containerId, invocation.ifname);
  if (kernel.linkIndex(hostIfname) !== undefined)
    throw new CniError(
      ErrorCode.interfaceFailure,
      `host veth ${hostIfname} for ${invocation.containerId}/${invocation.ifname} already exists`,
      "the attachment was added before without DEL: call DEL first",
    );
  const requested = requestedAddress(ctx);
  const range = new IpRange(config.podCidr);
  const mtu = config.mtu ?? (kernel.uplinkMtu() ?? FALLBACK_UPLINK_MTU) - OVERLAY_OVERHEAD;
  const podMac = requestedMac(ctx) ?? randomMac();

  trace("ADD checks done");
  using datapath = kernel.openDatapath(config.bpffsRoot);
  trace("datapath opened");
  const undo: { step: AddStep; run: () => void }[] = [];
  const done = (step: AddStep): void => {
    trace(`step ${step} done`);
    if (ctx.failAfter === step)
      throw new CniError(
        ErrorCode.internal,
        `injected failure after step "${step}"`,
        "SKEIN_CNI_TEST_FAIL_AFTER",
      );
  };
  try {
    const owner = { containerId: invocation.containerId, ifname: invocation.ifname };
    const store = IpamStore.open(config.dataDir, config.name);
    const podIp = store.locked(() => {
      store.sweepTemporaries();
      return store.reserve(range, owner, requested);
    });
    undo.push({
      step: "ipam",
      run: () => {
        store.locked(() => store.release(podIp, owner));
      },
    });
    done("ipam");

    const wiring: PodWiring = {
      hostIfname,
      hostMac: randomMac(),
      podIfname: invocation.ifname,
      podMac,
      netns: invocation.netns,
      mtu,
      podIp,
    };
    kernel.createHostSide(wiring);
    // Deleting the host veth takes its peer, the host route and both neighbour entries with it.
    undo.push({
      step: "veth",
      run: () => {
        kernel.deleteLink(hostIfname);
      },
    });
    done("veth");

    kernel.configurePodSide(wiring);
    done("pod");

    const ifindex = kernel.linkIndex(hostIfname);
    if (ifindex === undefined)
      throw new CniError(ErrorCode.interfaceFailure, `host veth ${hostIfname} vanished during ADD`);
    undo.push({
      step: "tc",
      run: () => {
        datapath.detach(ifindex, hostIfname);
      },
    });
    try {
      datapath.attach(ifindex, hostIfname);
    } catch (err) {
      throw new CniError(
        ErrorCode.datapathFailure,
        `cannot attach the Skein programs to ${hostIfname}`,
        describe(err),
        { cause: err },
      );
    }
    done("tc");

    undo.push({
      step: "endpoint",
      run: () => {
        if (datapath.endpoint(podIp)?.ifindex === ifindex) datapath.deleteEndpoint(podIp);
      },
    });
    try {
      datapath.setEndpoint(podIp, { ifindex, flags: 0, mac: podMac, hostMac: wiring.hostMac });
    } catch (err) {
      throw new CniError(
        ErrorCode.datapathFailure,
        `cannot write the endpoint entry for ${podIp}`,
        describe(err),
        { cause: err },
      );
    }
    done("endpoint");

    const ours = wiringResult(wiring);
    if (config.dns !== undefined) ours.dns = config.dns;
    return mergeResults(config.prevResult, ours);
  } catch (err) {
    const failures: string[] = [];
    for (const { step, run } of undo.reverse()) {
      try {
        run();
      } catch (undoErr) {
        failures.push(`undo ${step}: ${describe(undoErr)}`);
      }
    }
    if (failures.length === 0) throw err;
    ctx.log(`ADD rollback incomplete: ${failures.join("; ")}`);
    if (err instanceof CniError)
      throw new CniError(
        err.code,
        err.message,
        [err.details, `rollback incomplete: ${failures.join("; ")}`].filter((s) => s !== "").join("; "),
        { cause: err },
      );
    throw new AggregateError([err, ...failures], "ADD failed and its rollback was incomplete");
  }
}
