/**
 * The import boundaries of eslint.config.js bite: for every room, an import of each room it may not
 * import is an error naming the rule, and an import of each room it may import is not.
 */
import assert from "node:assert/strict";
import { ESLint } from "eslint";

/** An existing file per room: typed linting only accepts files of the TypeScript project. */
const PROBE_FILE: Record<string, string> = {
  loader: "loader/fd.ts",
  maps: "maps/net.ts",
  policy: "policy/selector.ts",
  cni: "cni/names.ts",
  agent: "agent/log.ts",
  ctl: "ctl/output.ts",
  lab: "lab/procs.ts",
};

interface Config {
  ROOMS: Record<string, string[]>;
}

describe("lint: import boundaries between rooms", function () {
  this.timeout(180_000);
  let eslint: ESLint;
  let rooms: Record<string, string[]>;

  before(async () => {
    eslint = new ESLint({ cwd: process.cwd() });
    rooms = ((await import(`${process.cwd()}/eslint.config.js`)) as Config).ROOMS;
  });

  async function restricted(room: string, target: string): Promise<string[]> {
    const file = PROBE_FILE[room]!;
    const depth = file.split("/").length - 1;
    const code = `import "${"../".repeat(depth)}${target}/index.js";\nexport {};\n`;
    const [result] = await eslint.lintText(code, { filePath: file });
    return (result?.messages ?? []).filter((m) => m.ruleId === "no-restricted-imports").map((m) => m.message);
  }

  it("every room has a probe file", () => {
    assert.deepEqual(Object.keys(rooms).sort(), Object.keys(PROBE_FILE).sort());
  });

  it("an import across a boundary is an error; an allowed one is not", async () => {
    const wrong: string[] = [];
    for (const [room, allowed] of Object.entries(rooms)) {
      for (const target of Object.keys(rooms)) {
        if (target === room) continue;
        const messages = await restricted(room, target);
        const shouldBite = !allowed.includes(target);
        if (shouldBite !== messages.length > 0)
          wrong.push(
            `${room} → ${target}: expected ${shouldBite ? "an error" : "none"}, got ${JSON.stringify(messages)}`,
          );
      }
    }
    assert.deepEqual(wrong, []);
  });

  it("agent, ctl, lab and cni never import each other", () => {
    for (const a of ["agent", "ctl", "lab", "cni"])
      for (const b of ["agent", "ctl", "lab", "cni"])
        if (a !== b) assert.ok(!rooms[a]!.includes(b), `${a} → ${b}`);
  });

  it("koffi outside loader/ is an error", async () => {
    const [result] = await eslint.lintText(`import "koffi";\nexport {};\n`, { filePath: PROBE_FILE.maps! });
    assert.ok(
      result?.messages.some((m) => m.ruleId === "no-restricted-imports" && m.message.includes("koffi")),
    );
  });
});
