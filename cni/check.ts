/**
 * CHECK: compare the attachment in the kernel with prevResult and report every difference
 * (code 103). Routes a later plugin added are allowed; ours must be there.
 */
import { PROGRAMS } from "../maps/pins.js";
import { CniError, ErrorCode, describe } from "./errors.js";
import type { VerbContext } from "./context.js";
import { IpamStore } from "./ipam.js";
import type { RouteState, SideView } from "./kernel.js";
import { GATEWAY_IP, hostVethName } from "./names.js";

function routeMatches(r: RouteState, dst: string, gw: string | undefined, dev: string): boolean {
  const normalised = r.dst === "default" ? "0.0.0.0/0" : r.dst.includes("/") ? r.dst : `${r.dst}/32`;
  return (
    normalised === dst && (gw === undefined || r.gateway === gw) && (r.dev === undefined || r.dev === dev)
  );
}

function sameMac(a: string | undefined, b: string | undefined): boolean {
  return a !== undefined && b !== undefined && a.toLowerCase() === b.toLowerCase();
}

/** Runs CHECK. Throws CniError 7 without prevResult, 3 when the netns is gone, 103 listing every mismatch. */
export function check(ctx: VerbContext): void {
  const { kernel, invocation, config } = ctx;
  const prev = config.prevResult;
  if (prev === undefined)
    throw new CniError(
      ErrorCode.invalidConfig,
      "CHECK needs prevResult",
      "the runtime must pass the result of the ADD",
    );
  if (kernel.netnsState(invocation.netns) === "missing")
    throw new CniError(ErrorCode.unknownContainer, `network namespace ${invocation.netns} does not exist`);

  const hostIfname = hostVethName(invocation.containerId, invocation.ifname);
  const podIndex = prev.interfaces.findIndex(
    (i) => i.name === invocation.ifname && (i.sandbox === undefined || i.sandbox === invocation.netns),
  );
  if (podIndex < 0)
    throw new CniError(
      ErrorCode.checkFailed,
      `prevResult lists no interface ${invocation.ifname} in ${invocation.netns}`,
    );
  const podIf = prev.interfaces[podIndex];
  const hostIf = prev.interfaces.find((i) => i.name === hostIfname);
  const podIps = prev.ips.filter((ip) => ip.interface === podIndex).map((ip) => ip.address);
  if (podIps.length === 0)
    throw new CniError(ErrorCode.checkFailed, `prevResult lists no address on ${invocation.ifname}`);

  const problems: string[] = [];
  const expect = (ok: boolean, problem: string): void => {
    if (!ok) problems.push(problem);
  };

  const store = IpamStore.existing(config.dataDir, config.name);
  for (const cidr of podIps) {
    const ip = cidr.split("/")[0] ?? "";
    const owner = store?.owner(ip);
    expect(
      owner?.containerId === invocation.containerId && owner.ifname === invocation.ifname,
      `${ip} is not reserved for ${invocation.containerId}/${invocation.ifname} in ${config.dataDir}/${config.name}`,
    );
  }

  const host: SideView = kernel.inspectHost(hostIfname, podIps[0]?.split("/")[0] ?? "");
  const pod: SideView = kernel.inspectPod(invocation.netns, invocation.ifname);
  const hostMac = host.link?.mac;
  const podMac = pod.link?.mac;

  expect(host.link !== undefined, `host veth ${hostIfname} is missing`);
  if (host.link !== undefined) {
    expect(host.link.up, `host veth ${hostIfname} is down`);
    if (hostIf?.mac !== undefined)
      expect(
        sameMac(hostMac, hostIf.mac),
        `host veth ${hostIfname} has MAC ${hostMac}, prevResult says ${hostIf.mac}`,
      );
  }
  expect(pod.link !== undefined, `${invocation.ifname} is missing in ${invocation.netns}`);
  if (pod.link !== undefined) {
    expect(pod.link.up, `${invocation.ifname} is down`);
    if (podIf?.mac !== undefined)
      expect(
        sameMac(podMac, podIf.mac),
        `${invocation.ifname} has MAC ${podMac}, prevResult says ${podIf.mac}`,
      );
    if (podIf?.mtu !== undefined)
      expect(
        pod.link.mtu === podIf.mtu,
        `${invocation.ifname} has MTU ${pod.link.mtu}, prevResult says ${podIf.mtu}`,
      );
  }

  for (const cidr of podIps) {
    const ip = cidr.split("/")[0] ?? "";
    expect(pod.addresses.includes(cidr), `${invocation.ifname} lacks address ${cidr}`);
    if (host.link !== undefined) {
      expect(
        host.routes.some((r) => routeMatches(r, `${ip}/32`, undefined, hostIfname)),
        `host route ${ip}/32 dev ${hostIfname} is missing`,
      );
      const n = host.neighbours.find((x) => x.ip === ip);
      expect(
        n !== undefined && n.permanent && sameMac(n.mac, podMac),
        `host neighbour ${ip} → ${podMac} (permanent) on ${hostIfname} is missing`,
      );
    }
  }
  if (pod.link !== undefined) {
    expect(
      pod.routes.some(
        (r) => routeMatches(r, `${GATEWAY_IP}/32`, undefined, invocation.ifname) && r.scope === "link",
      ),
      `route ${GATEWAY_IP} dev ${invocation.ifname} scope link is missing`,
    );
    for (const route of prev.routes) {
      expect(
        pod.routes.some((r) => routeMatches(r, route.dst, route.gw, invocation.ifname)),
        `route ${route.dst}${route.gw === undefined ? "" : ` via ${route.gw}`} is missing in ${invocation.netns}`,
      );
    }
    const gw = pod.neighbours.find((x) => x.ip === GATEWAY_IP);
    expect(
      gw !== undefined && gw.permanent && sameMac(gw.mac, hostMac),
      `neighbour ${GATEWAY_IP} → ${hostMac} (permanent) is missing in ${invocation.netns}`,
    );
  }

  const missing = kernel.missingPins(config.bpffsRoot);
  if (missing.length > 0) {
    problems.push(`Skein datapath is not loaded under ${config.bpffsRoot} (missing ${missing.join(", ")})`);
  } else if (host.link !== undefined) {
    try {
      using datapath = kernel.openDatapath(config.bpffsRoot);
      const attached = datapath.attached(host.link.ifindex, hostIfname);
      expect(
        attached.ingress === PROGRAMS.fromPod,
        `${hostIfname} ingress slot holds ${attached.ingress ?? "nothing"}, not ${PROGRAMS.fromPod}`,
      );
      expect(
        attached.egress === PROGRAMS.toPod,
        `${hostIfname} egress slot holds ${attached.egress ?? "nothing"}, not ${PROGRAMS.toPod}`,
      );
      for (const cidr of podIps) {
        const ip = cidr.split("/")[0] ?? "";
        const e = datapath.endpoint(ip);
        expect(e !== undefined, `endpoint entry for ${ip} is missing`);
        if (e !== undefined) {
          expect(
            e.ifindex === host.link.ifindex,
            `endpoint ${ip} points at ifindex ${e.ifindex}, ${hostIfname} is ${host.link.ifindex}`,
          );
          expect(
            sameMac(e.mac, podMac),
            `endpoint ${ip} has pod MAC ${e.mac}, ${invocation.ifname} has ${podMac}`,
          );
          expect(
            sameMac(e.hostMac, hostMac),
            `endpoint ${ip} has host MAC ${e.hostMac}, ${hostIfname} has ${hostMac}`,
          );
        }
      }
    } catch (err) {
      problems.push(`cannot read the datapath: ${describe(err)}`);
    }
  }

  if (problems.length > 0)
    throw new CniError(ErrorCode.checkFailed, `CHECK failed: ${problems[0] ?? ""}`, problems.join("; "));
}
