/**
 * The kernel-only reference path, same shape as the lab: two node namespaces on an underlay
 * bridge, pods on veths with host routes (the same 169.254.1.1 gateway wiring skein-cni does),
 * and between nodes a classic kernel VXLAN device with host routing through it (flannel's
 * vxlan backend, in short). No BPF anywhere.
 */
import { execFile } from "node:child_process";
import { ip, ipBatch } from "../loader/index.js";

export interface BaselinePod {
  name: string;
  netns: string;
  ip: string;
}

interface BaselineNode {
  netns: string;
  ip: string;
  podCidr: string;
  vx: string;
}

export interface KernelBaseline {
  prefix: string;
  /** Node namespaces and their underlay addresses. */
  n1: { netns: string; ip: string };
  n2: { netns: string; ip: string };
  /** Two pods on n1 and one on n2. */
  p1a: BaselinePod;
  p1b: BaselinePod;
  p2a: BaselinePod;
  teardown(): Promise<void>;
}

const GW = "169.254.1.1";

/** Runs a command inside a network namespace (by name). */
export function nsExec(netns: string, argv: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile("nsenter", [`--net=/var/run/netns/${netns}`, ...argv], (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`${argv.join(" ")} in ${netns}: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

async function run(cmds: string[], netns?: string): Promise<void> {
  await ipBatch(cmds, netns === undefined ? {} : { netns: `/var/run/netns/${netns}` });
}

async function hostMac(netns: string, ifname: string): Promise<string> {
  const out = JSON.parse(
    await ip(["-j", "link", "show", "dev", ifname], { netns: `/var/run/netns/${netns}` }),
  ) as { address: string }[];
  const address = out[0]?.address;
  if (address === undefined) throw new Error(`${ifname} in ${netns} has no MAC address`);
  return address;
}

/** Builds the baseline under `prefix` (a short unique string). Throws after removing what it made. */
export async function buildKernelBaseline(prefix: string, mtu = 1500): Promise<KernelBaseline> {
  const made: string[] = [];
  const teardown = async () => {
    for (const ns of made.reverse()) await ip(["netns", "del", ns]).catch(() => undefined);
  };
  try {
    const u = `${prefix}-u`;
    await ip(["netns", "add", u]);
    made.push(u);
    await run(["link set lo up", "link add br0 type bridge", "link set br0 up"], u);
    const nodes: [BaselineNode, BaselineNode] = [
      { netns: `${prefix}-n1`, ip: "198.19.0.11", podCidr: "10.98.0.0/24", vx: "10.97.0.1" },
      { netns: `${prefix}-n2`, ip: "198.19.0.12", podCidr: "10.98.1.0/24", vx: "10.97.0.2" },
    ];
    for (const [i, n] of nodes.entries()) {
      const other = i === 0 ? nodes[1] : nodes[0];
      await ip(["netns", "add", n.netns]);
      made.push(n.netns);
      await ip([
        "-n",
        u,
        "link",
        "add",
        `n${i + 1}`,
        "mtu",
        String(mtu),
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        n.netns,
      ]);
      await run([`link set n${i + 1} master br0`, `link set n${i + 1} up`], u);
      await run(["link set lo up", `addr add ${n.ip}/24 dev eth0`, "link set eth0 up"], n.netns);
      await run(
        [
          `link add vx0 type vxlan id 42 dstport 4789 local ${n.ip} dev eth0 nolearning`,
          `link set vx0 mtu ${mtu - 50} up`,
          `addr add ${n.vx}/24 dev vx0`,
          `route add ${other.podCidr} via ${other.vx} dev vx0 onlink`,
        ],
        n.netns,
      );
      await nsExec(n.netns, ["bridge", "fdb", "append", "00:00:00:00:00:00", "dev", "vx0", "dst", other.ip]);
      await nsExec(n.netns, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
    }
    const addPod = async (p: { name: string; node: BaselineNode; ip: string }): Promise<BaselinePod> => {
      const node = p.node;
      const netns = `${prefix}-${p.name}`;
      await ip(["netns", "add", netns]);
      made.push(netns);
      const hostIf = `v${p.name}`;
      await ip([
        "-n",
        node.netns,
        "link",
        "add",
        hostIf,
        "mtu",
        String(mtu - 50),
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        netns,
      ]);
      const hmac = await hostMac(node.netns, hostIf);
      const pmac = await hostMac(netns, "eth0");
      await run(
        [
          "link set lo up",
          `addr add ${p.ip}/32 dev eth0`,
          "link set eth0 up",
          `route add ${GW} dev eth0 scope link`,
          `route add default via ${GW}`,
          `neigh add ${GW} lladdr ${hmac} dev eth0 nud permanent`,
        ],
        netns,
      );
      await run(
        [
          `link set ${hostIf} up`,
          `route add ${p.ip}/32 dev ${hostIf}`,
          `neigh add ${p.ip} lladdr ${pmac} dev ${hostIf} nud permanent`,
        ],
        node.netns,
      );
      return { name: p.name, netns, ip: p.ip };
    };
    const p1a = await addPod({ name: "p1a", node: nodes[0], ip: "10.98.0.10" });
    const p1b = await addPod({ name: "p1b", node: nodes[0], ip: "10.98.0.11" });
    const p2a = await addPod({ name: "p2a", node: nodes[1], ip: "10.98.1.10" });
    return {
      prefix,
      n1: { netns: nodes[0].netns, ip: nodes[0].ip },
      n2: { netns: nodes[1].netns, ip: nodes[1].ip },
      p1a,
      p1b,
      p2a,
      teardown,
    };
  } catch (err) {
    await teardown();
    throw err;
  }
}
