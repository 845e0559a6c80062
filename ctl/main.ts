/** skeinctl entry point: the only place that exits. */
import { runCtl } from "./cli.js";
import { COMMANDS } from "./commands/index.js";

const code = await runCtl(
  process.argv.slice(2),
  {
    stdout: (t) => process.stdout.write(t),
    stderr: (t) => process.stderr.write(t),
  },
  COMMANDS,
);
process.exitCode = code;
