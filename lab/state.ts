/**
 * A lab's record of what it made: /run/skein-lab/<ID>/state.json, written right after each thing
 * is made (and removed), so that teardown removes exactly that, even after a crash.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ProcRecord } from "./procs.js";

export const STATE_ROOT = "/run/skein-lab";

export interface LabNode {
  name: string;
  index: number;
  netns: string;
  ip: string;
  podCidr: string;
  bpffsRoot: string;
  confDir: string;
  ipamDir: string;
  agent: ProcRecord | null;
  workload: ProcRecord | null;
  control: string;
  /**
   * The node's resident CNI server (--cni-server on): its process and socket. The lab's CNI calls
   * get SKEIN_CNI_SOCKET set to the socket, as a node's runtime would reach the default one.
   */
  cniServer?: ProcRecord | null;
  cniSocket?: string;
  /** With racks (--racks N): the node's rack, 0-based (its underlay subnet is `racks.subnets[rack]`). */
  rack?: number;
  /** With BGP: the agent's --bird-dir (BIRD's config, control socket and pid file). */
  birdDir?: string;
}

/**
 * Racks (`--racks N`, native routing): one underlay subnet and bridge per rack, joined by a router
 * namespace whose BIRD is the nodes' BGP route reflector.
 */
export interface LabRacks {
  /** Rack r's subnet; rack 0's is the lab's `subnet`. */
  subnets: string[];
  /** The router's namespace, once made. */
  router: string | null;
  /** The router's BIRD. */
  bird: ProcRecord | null;
  /** The router's BIRD directory (config, control socket, pid file). */
  birdDir: string;
  asn: number;
}

export interface LabPod {
  namespace: string;
  name: string;
  node: string;
  netns: string;
  containerId: string;
  ip: string;
  labels: Record<string, string>;
  workload: ProcRecord | null;
  control: string;
}

/** The namespace outside the cluster ("the internet") and its workload. */
export interface LabWorld {
  netns: string;
  workload: ProcRecord | null;
  control: string;
}

export interface LabState {
  id: string;
  subnet: string;
  createdAt: string;
  rootLink: string | null;
  underlay: string | null;
  world: LabWorld | null;
  api: { proc: ProcRecord; url: string } | null;
  nodes: LabNode[];
  pods: LabPod[];
  namespaces: string[];
  cniBin: string;
  /** One resident CNI server per node (absent in records of older labs: none). */
  cniServer?: boolean;
  /** Absent: one underlay segment. */
  racks?: LabRacks;
}

function stateFile(id: string): string {
  return join(STATE_ROOT, id, "state.json");
}

/** A lab's state and the file it is recorded in. Every module that makes something saves it here. */
export class LabRecord {
  readonly state: LabState;
  /** /run/skein-lab/<ID>: the state file, logs, control sockets, per-node directories. */
  readonly dir: string;

  constructor(state: LabState) {
    this.state = state;
    this.dir = join(STATE_ROOT, state.id);
  }

  /**
   * Makes the directory of a new lab `id`. Throws when the id is not 1-8 lowercase letters or
   * digits (it goes into interface and namespace names) or a lab `id` is recorded already.
   */
  static reserve(id: string): void {
    if (!/^[a-z0-9]{1,8}$/.test(id))
      throw new Error(`lab id must be 1-8 lowercase letters or digits, got ${JSON.stringify(id)}`);
    if (existsSync(stateFile(id)))
      throw new Error(`lab ${id} exists already (teardown it first: npm run lab -- teardown --id ${id})`);
    mkdirSync(join(STATE_ROOT, id), { recursive: true });
  }

  /** The record of lab `id`. Throws when there is none. */
  static open(id: string): LabRecord {
    const file = stateFile(id);
    if (!existsSync(file)) throw new Error(`no lab ${id} (${file} missing)`);
    return new LabRecord(JSON.parse(readFileSync(file, "utf8")) as LabState);
  }

  /** Ids of every lab with a state file. */
  static list(): string[] {
    if (!existsSync(STATE_ROOT)) return [];
    return readdirSync(STATE_ROOT).filter((d) => existsSync(stateFile(d)));
  }

  /** Underlay subnets of every recorded lab (an unreadable state file counts as none). */
  static subnets(): string[] {
    return LabRecord.list()
      .map((id) => {
        try {
          return (JSON.parse(readFileSync(stateFile(id), "utf8")) as LabState).subnet;
        } catch {
          return "";
        }
      })
      .filter((x) => x !== "");
  }

  save(): void {
    writeFileSync(stateFile(this.state.id), JSON.stringify(this.state, null, 2));
  }

  /** Removes the lab's directory: once this is gone, nothing of the lab is recorded any more. */
  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
