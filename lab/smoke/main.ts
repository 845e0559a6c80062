/**
 * The smoke test against a real cluster (what the Vagrant lab runs after installing Skein):
 *
 *   node dist/lab/smoke/main.js [--kubeconfig PATH] [--context NAME] [--image IMAGE]
 *        [--image-pull-policy IfNotPresent|Never|Always] [--kubectl PATH] [--namespace NAME]
 *        [--converge-timeout SECONDS] [--keep] [--json FILE]
 *
 * --image defaults to $SKEIN_IMAGE, then localhost/skein:0.1.0 (deploy/skein.yaml's image).
 * Exit status 0 when every check passed, 1 otherwise, 2 on a usage error.
 */
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { DEFAULT_IMAGE, KubectlDriver } from "./kubectl-driver.js";
import { renderSmokeReport, runSmoke } from "./smoke.js";

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      kubeconfig: { type: "string" },
      context: { type: "string" },
      image: { type: "string" },
      "image-pull-policy": { type: "string" },
      kubectl: { type: "string" },
      namespace: { type: "string" },
      "converge-timeout": { type: "string" },
      keep: { type: "boolean" },
      json: { type: "string" },
    },
    strict: true,
  });
  const policy = values["image-pull-policy"] ?? "IfNotPresent";
  if (policy !== "IfNotPresent" && policy !== "Never" && policy !== "Always")
    throw new UsageError(`--image-pull-policy must be IfNotPresent, Never or Always, not ${policy}`);
  const convergeS = Number(values["converge-timeout"] ?? "90");
  if (!Number.isFinite(convergeS) || convergeS <= 0)
    throw new UsageError(`--converge-timeout must be a positive number of seconds`);
  const driver = new KubectlDriver({
    image: values.image ?? process.env.SKEIN_IMAGE ?? DEFAULT_IMAGE,
    imagePullPolicy: policy,
    ...(values.kubectl === undefined ? {} : { kubectl: values.kubectl }),
    ...(values.kubeconfig === undefined ? {} : { kubeconfig: values.kubeconfig }),
    ...(values.context === undefined ? {} : { context: values.context }),
  });
  const say = (line: string) => process.stdout.write(line + "\n");
  say(
    "skein smoke test: cross-node connectivity, then a NetworkPolicy that denies one flow and allows another",
  );
  const report = await runSmoke(driver, say, {
    ...(values.namespace === undefined ? {} : { namespace: values.namespace }),
    convergeTimeoutMs: convergeS * 1000,
    ...(values.keep === true ? { keep: true } : {}),
  });
  process.stdout.write("\n" + renderSmokeReport(report));
  if (values.json !== undefined) writeFileSync(values.json, JSON.stringify(report, null, 2) + "\n");
  return report.ok ? 0 : 1;
}

class UsageError extends Error {}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`skein smoke: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = err instanceof UsageError || (err instanceof TypeError && "code" in err) ? 2 : 1;
  },
);
