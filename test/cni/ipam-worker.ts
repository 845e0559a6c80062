/**
 * Child process for the IPAM concurrency test: reserves five addresses for one container (as five
 * ifnames) through the real store and lock, printing each address.
 * Usage: node ipam-worker.js DATA_DIR NETWORK CIDR CONTAINER_ID
 */
import { IpRange, IpamStore } from "../../cni/ipam.js";
import { parsePrefix } from "../../maps/net.js";

const [dataDir, network, cidr, containerId] = process.argv.slice(2);
if (dataDir === undefined || network === undefined || cidr === undefined || containerId === undefined)
  throw new Error("usage: ipam-worker DATA_DIR NETWORK CIDR CONTAINER_ID");
const store = IpamStore.open(dataDir, network);
const range = new IpRange(parsePrefix(cidr));
for (let i = 0; i < 5; i++) {
  const ip = store.locked(() => store.reserve(range, { containerId, ifname: `eth${i}` }));
  process.stdout.write(`${ip}\n`);
}
