/**
 * The lab's resident CNI servers: one per node, inside the node's namespace, its socket in the
 * node's directory; calls through it wire pods beside the lab's own CNI path (shared IPAM), and
 * teardown stops it by PID and removes the socket.
 */
import assert from "node:assert/strict";
import { existsSync, statSync } from "node:fs";
import { Lab } from "../../lab/lab.js";
import { isRunning } from "../../lab/procs.js";
import { netnsPath } from "../../lab/topology.js";
import { prefixContainsIp, parsePrefix } from "../../maps/net.js";
import { requireRoot } from "../helpers/privileged.js";
import { SYSTEM_PATH, cniEnv, createNetns, deleteNetns } from "../cni/plugin-harness.js";
import { callServer } from "../cni/server-client.js";

describe("lab: resident CNI server per node", function () {
  this.timeout(180000);
  let lab: Lab | undefined;
  const pods: string[] = [];

  before(function () {
    requireRoot(this);
  });

  after(async function () {
    for (const p of pods) deleteNetns(p);
    if (lab !== undefined) await lab.teardown();
  });

  it("runs in the node's namespace, serves the node's CNI calls, and goes away with the lab", async function () {
    lab = await Lab.create({});
    const node = await lab.addNode();
    const proc = node.cniServer;
    const socket = node.cniSocket;
    assert.ok(proc != null && socket !== undefined, "the node has a CNI server");
    assert.ok(isRunning(proc));
    assert.equal(statSync(`/proc/${proc.pid}/ns/net`).ino, statSync(netnsPath(node.netns)).ino);
    assert.equal(statSync(socket).mode & 0o777, 0o600);

    // A pod the lab wires (its CNI path) and one wired through the server share the node's IPAM.
    await lab.ensureNamespace("default");
    const labPod = await lab.addPod({ namespace: "default", name: "web", node });
    const p = createNetns("sknls");
    pods.push(p);
    const env = { PATH: SYSTEM_PATH, ...cniEnv("ADD", p, p) };
    const config = JSON.stringify(lab.pluginConfig(node));
    const added = await callServer(socket, env, config);
    assert.equal(added.exitCode, 0, `${added.stdout} ${added.stderr}`);
    const ip = ((added.json?.ips ?? []) as { address: string }[])[0]?.address.split("/")[0] ?? "";
    assert.ok(prefixContainsIp(parsePrefix(node.podCidr), ip), `${ip} in ${node.podCidr}`);
    assert.notEqual(ip, labPod.ip);
    const withPrev = JSON.stringify({ ...lab.pluginConfig(node), prevResult: added.json });
    const checked = await callServer(socket, { ...env, CNI_COMMAND: "CHECK" }, withPrev);
    assert.equal(checked.exitCode, 0, `${checked.stdout} ${checked.stderr}`);
    const deleted = await callServer(socket, { ...env, CNI_COMMAND: "DEL" }, withPrev);
    assert.equal(deleted.exitCode, 0, `${deleted.stdout} ${deleted.stderr}`);

    const problems = await lab.teardown();
    lab = undefined;
    assert.deepEqual(problems, []);
    assert.ok(!isRunning(proc), "the server is stopped");
    assert.ok(!existsSync(socket), "its socket is gone");
  });
});
