import assert from "node:assert/strict";
import { DEFAULT_ROUTING_MODE, ROUTING_MODES, parseRoutingMode } from "../../maps/agent-api.js";
import { DEFAULT_SETTINGS, decodeSettings, encodeSettings } from "../../maps/settings.js";

describe("routing mode", function () {
  it("accepts vxlan and native, vxlan by default", function () {
    assert.deepEqual(ROUTING_MODES, ["vxlan", "native"]);
    assert.equal(DEFAULT_ROUTING_MODE, "vxlan");
    assert.equal(parseRoutingMode("native"), "native");
    assert.equal(parseRoutingMode("vxlan"), "vxlan");
  });

  it("refuses anything else with the accepted values in the message", function () {
    for (const bad of ["", "Native", "bgp", "host-gw", 1, true, null, undefined])
      assert.throws(
        () => parseRoutingMode(bad, "--routing"),
        (err: unknown) =>
          err instanceof RangeError &&
          err.message.startsWith("--routing: unknown routing mode") &&
          err.message.endsWith("expected one of vxlan, native"),
      );
  });

  it("travels to the datapath as skn_settings.routing_native", function () {
    const b = encodeSettings({ ...DEFAULT_SETTINGS, routingNative: true });
    assert.equal(b.readUInt32LE(28), 1);
    assert.equal(decodeSettings(b).routingNative, true);
    assert.equal(encodeSettings(DEFAULT_SETTINGS).readUInt32LE(28), 0);
  });
});
