/**
 * The kube-proxy model's rule text (pure), and that both shapes load into a real kernel's netfilter
 * and come out again. Traffic through the rules is test/e2e/services-kube-proxy.test.ts.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { ip } from "../../loader/index.js";
import {
  applyKubeProxy,
  iptablesRules,
  nftablesRules,
  removeKubeProxy,
  type ProxiedService,
} from "../../lab/kube-proxy.js";
import { uniqueName } from "../helpers/names.js";
import { requireRoot } from "../helpers/privileged.js";

const WEB: ProxiedService = {
  name: "web",
  namespace: "demo",
  clusterIP: "10.96.0.10",
  ports: [{ name: "http", port: 80, protocol: "TCP", targetPort: 8080, nodePort: 30080 }],
  endpoints: [
    { ip: "10.244.0.2", nodeName: "n1", ready: true },
    { ip: "10.244.1.2", nodeName: "n2", ready: true },
    { ip: "10.244.1.3", nodeName: "n2", ready: true },
    { ip: "10.244.1.9", nodeName: "n2", ready: false },
  ],
  externalTrafficPolicy: "Cluster",
  externalIPs: ["198.51.100.10"],
};
const EMPTY: ProxiedService = {
  name: "empty",
  namespace: "demo",
  clusterIP: "10.96.0.11",
  ports: [{ port: 53, protocol: "UDP", targetPort: 5353 }],
  endpoints: [],
  externalTrafficPolicy: "Cluster",
};
const LOCAL: ProxiedService = {
  ...WEB,
  name: "local",
  clusterIP: "10.96.0.12",
  ports: [{ port: 80, protocol: "TCP", targetPort: 8080, nodePort: 30081 }],
  externalIPs: [],
  externalTrafficPolicy: "Local",
};
const OPTS = { nodeName: "n1", clusterCidr: "10.244.0.0/16" };

describe("lab: kube-proxy model", function () {
  it("iptables mode: services → svc → sep chains, random choice over ready endpoints, hairpin and external masquerade", function () {
    const text = iptablesRules([WEB], OPTS);
    const lines = text.split("\n");
    const svc = /-j (KUBE-SVC-[A-Z2-7]{16})$/.exec(
      lines.find((l) => l.startsWith("-A KUBE-SERVICES -d 10.96.0.10/32")) ?? "",
    )?.[1];
    assert.ok(svc !== undefined, text);
    const choices = lines.filter((l) => l.startsWith(`-A ${svc} -m comment`));
    assert.equal(choices.length, 3, "one per ready endpoint");
    assert.match(choices[0] ?? "", /--probability 0\.33333333333 -j KUBE-SEP-/);
    assert.match(choices[1] ?? "", /--probability 0\.50000000000 -j KUBE-SEP-/);
    assert.doesNotMatch(choices[2] ?? "", /statistic/);
    assert.ok(lines.some((l) => /-A KUBE-SEP-\S+ -s 10\.244\.0\.2\/32 .*-j KUBE-MARK-MASQ/.test(l)));
    assert.ok(lines.some((l) => /-j DNAT --to-destination 10\.244\.1\.3:8080$/.test(l)));
    assert.ok(!text.includes("10.244.1.9"), "not-ready endpoints get no traffic");
    assert.ok(lines.some((l) => /^-A KUBE-NODEPORTS -p tcp .*--dport 30080 -j KUBE-EXT-/.test(l)));
    assert.ok(lines.some((l) => /^-A KUBE-SERVICES -d 198\.51\.100\.10\/32 .*-j KUBE-EXT-/.test(l)));
    assert.ok(lines.includes("-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN"));
    const nat = lines.slice(0, lines.indexOf("COMMIT"));
    assert.match(
      nat.filter((l) => l.startsWith("-A KUBE-SERVICES ")).at(-1) ?? "",
      /--dst-type LOCAL -j KUBE-NODEPORTS$/,
      "nodeports last in nat KUBE-SERVICES",
    );
  });

  it("iptables mode: a Service without endpoints is rejected in filter; Local without a local endpoint drops", function () {
    const text = iptablesRules([EMPTY, LOCAL], { ...OPTS, nodeName: "n3" });
    assert.match(
      text,
      /-A KUBE-SERVICES -d 10\.96\.0\.11\/32 -p udp -m udp --dport 53 .*-j REJECT --reject-with icmp-port-unreachable/,
    );
    assert.match(text, /-A KUBE-EXTERNAL-SERVICES -m addrtype --dst-type LOCAL -p tcp .*30081 .*-j DROP/);
    assert.doesNotMatch(text, /KUBE-SVL-/, "no local endpoint, no local chain");
    assert.match(iptablesRules([LOCAL], OPTS), /-A (KUBE-EXT-\S+) -j KUBE-SVL-/);
  });

  it("nftables mode: verdict maps name the service, external and endpoint chains", function () {
    const text = nftablesRules([WEB, EMPTY], OPTS);
    assert.match(text, /map service-ips \{\n {4}type ipv4_addr \. inet_proto \. inet_service : verdict/);
    assert.match(text, /10\.96\.0\.10 \. tcp \. 80 : goto service-[A-Z2-7]{8}-demo\/web\/tcp\/http/);
    assert.match(text, /198\.51\.100\.10 \. tcp \. 80 : goto external-/);
    assert.match(text, /tcp \. 30080 : goto external-/);
    assert.match(text, /10\.96\.0\.11 \. udp \. 53 : goto reject-chain/);
    assert.match(text, /numgen random mod 3 vmap \{ 0 : goto endpoint-/);
    assert.match(text, /chain endpoint-\S+__10\.244\.1\.2\/8080 \{/);
  });

  describe("in a real network namespace", function () {
    const netns = uniqueName("skkp");
    before(async function () {
      requireRoot(this);
      await ip(["netns", "add", netns]);
    });
    after(async function () {
      await ip(["netns", "del", netns]).catch(() => undefined);
    });

    const ruleset = () =>
      execFileSync("nsenter", [`--net=/var/run/netns/${netns}`, "nft", "list", "ruleset"], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "ignore"],
      });

    it("loads either shape, switches between them, and removes both", async function () {
      await applyKubeProxy(netns, "iptables", [WEB, EMPTY, LOCAL], OPTS);
      assert.match(ruleset(), /chain KUBE-SERVICES/);
      await applyKubeProxy(netns, "nftables", [WEB, EMPTY, LOCAL], OPTS);
      let now = ruleset();
      assert.match(now, /table ip kube-proxy/);
      assert.doesNotMatch(now, /KUBE-/, "the iptables mode's chains are gone");
      await applyKubeProxy(netns, "iptables", [WEB], OPTS);
      now = ruleset();
      assert.doesNotMatch(now, /table ip kube-proxy/);
      await removeKubeProxy(netns);
      assert.doesNotMatch(ruleset(), /KUBE-|kube-proxy/);
    });
  });
});
