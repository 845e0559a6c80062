// Mocha's spec reporter, plus the plain closing line CI reads: "N passed, N failed[, N skipped]".
// In CI a skipped privileged test counts as a failure (see test/helpers/privileged.ts).
"use strict";
const Mocha = require("mocha");
const { EVENT_RUN_END, EVENT_TEST_PASS, EVENT_TEST_FAIL, EVENT_TEST_PENDING } = Mocha.Runner.constants;

class SkeinReporter extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    runner.on(EVENT_TEST_PASS, () => passed++);
    runner.on(EVENT_TEST_FAIL, () => failed++);
    runner.on(EVENT_TEST_PENDING, () => skipped++);
    runner.once(EVENT_RUN_END, () => {
      // The spec reporter registered its summary first, so this line comes after it.
      const line = `${passed} passed, ${failed} failed` + (skipped > 0 ? `, ${skipped} skipped` : "");
      process.stdout.write(`${line}\n`);
    });
  }
}

module.exports = SkeinReporter;
