/** Every skeinctl command. */
import type { Command } from "../cli.js";
import { datapathDetach, datapathLoad, datapathUnload } from "./datapath.js";
import { endpointList } from "./endpoint.js";
import { identityList } from "./identity.js";
import { mapDump, mapList } from "./map.js";
import { monitor } from "./monitor.js";
import { nodeList } from "./node.js";
import { policySimulate } from "./policy.js";
import { serviceList } from "./service.js";
import { status } from "./status.js";

/** The commands runCtl dispatches, in the order help lists them. */
export const COMMANDS: readonly Command[] = [
  status,
  datapathLoad,
  datapathUnload,
  datapathDetach,
  endpointList,
  identityList,
  nodeList,
  serviceList,
  mapList,
  mapDump,
  monitor,
  policySimulate,
];
