/**
 * Just enough SCTP to prove policy verdicts on a kernel without SCTP sockets: a client sends an
 * INIT on a raw socket and waits for the INIT-ACK; a server answers INITs to its ports. Conntrack
 * and policy in the datapath see a real SCTP association opening in both directions.
 */
import { randomInt } from "node:crypto";
import { RawSocket } from "../../loader/index.js";
import { crc32c, sctpInit } from "../../maps/packet.js";

export const IPPROTO_SCTP = 132;
const CHUNK_INIT = 1;
const CHUNK_INIT_ACK = 2;

interface SctpPacket {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  vtag: number;
  chunkType: number;
  /** INIT / INIT-ACK: the sender's initiate tag. */
  initiateTag: number;
}

function parse(ipPacket: Buffer): SctpPacket | undefined {
  if (ipPacket.length < 20) return undefined;
  const ihl = (ipPacket.readUInt8(0) & 0x0f) * 4;
  if (ipPacket[9] !== IPPROTO_SCTP || ipPacket.length < ihl + 12 + 8) return undefined;
  const s = ipPacket.subarray(ihl);
  const addr = (o: number) => [...ipPacket.subarray(o, o + 4)].join(".");
  return {
    src: addr(12),
    dst: addr(16),
    sport: s.readUInt16BE(0),
    dport: s.readUInt16BE(2),
    vtag: s.readUInt32BE(4),
    chunkType: s.readUInt8(12),
    initiateTag: s.length >= 20 ? s.readUInt32BE(16) : 0,
  };
}

function initAck(toPort: number, fromPort: number, peerTag: number, ownTag: number): Buffer {
  // INIT-ACK with a State Cookie parameter (mandatory in real SCTP; nobody checks it here).
  const cookie = Buffer.alloc(8, 0x5e);
  const param = Buffer.alloc(4 + cookie.length);
  param.writeUInt16BE(7, 0);
  param.writeUInt16BE(param.length, 2);
  cookie.copy(param, 4);
  const chunk = Buffer.alloc(20 + param.length);
  chunk.writeUInt8(CHUNK_INIT_ACK, 0);
  chunk.writeUInt16BE(chunk.length, 2);
  chunk.writeUInt32BE(ownTag, 4);
  chunk.writeUInt32BE(65536, 8);
  chunk.writeUInt16BE(1, 12);
  chunk.writeUInt16BE(1, 14);
  chunk.writeUInt32BE(1, 16);
  param.copy(chunk, 20);
  const b = Buffer.alloc(12 + chunk.length);
  b.writeUInt16BE(fromPort, 0);
  b.writeUInt16BE(toPort, 2);
  b.writeUInt32BE(peerTag, 4);
  chunk.copy(b, 12);
  b.writeUInt32LE(crc32c(b), 8);
  return b;
}

/** Answers INITs to `ports` with INIT-ACKs until stopped. */
export function serveSctp(
  ports: readonly number[],
  log: (l: string) => void = () => undefined,
): { stop(): void } {
  const sock = new RawSocket(IPPROTO_SCTP);
  const wanted = new Set(ports);
  const state = { running: true };
  void (async () => {
    while (state.running) {
      const pkt = await sock.receive(1000).catch(() => undefined);
      if (pkt === undefined) continue;
      const p = parse(pkt);
      if (p === undefined || p.chunkType !== CHUNK_INIT || !wanted.has(p.dport)) continue;
      try {
        sock.send(p.src, initAck(p.sport, p.dport, p.initiateTag, randomInt(1, 0xffffffff)));
      } catch (err) {
        log(`sctp: ${String(err)}`);
      }
    }
  })();
  return {
    stop() {
      state.running = false;
      sock.close();
    },
  };
}

/** Opens (the first half of) an association: INIT to host:port, true when the INIT-ACK comes back. */
export async function probeSctp(host: string, port: number, timeoutMs: number): Promise<boolean> {
  using sock = new RawSocket(IPPROTO_SCTP);
  const sport = randomInt(20000, 60000);
  const tag = randomInt(1, 0xffffffff);
  const deadline = Date.now() + timeoutMs;
  let nextSend = 0;
  while (Date.now() < deadline) {
    if (Date.now() >= nextSend) {
      sock.send(host, sctpInit({ src: "0.0.0.0", dst: host, sport, dport: port, tag }));
      nextSend = Date.now() + Math.max(100, timeoutMs / 3);
    }
    const pkt = await sock.receive(Math.min(100, Math.max(1, deadline - Date.now())));
    if (pkt === undefined) continue;
    const p = parse(pkt);
    if (
      p !== undefined &&
      p.chunkType === CHUNK_INIT_ACK &&
      p.src === host &&
      p.sport === port &&
      p.dport === sport &&
      p.vtag === tag
    )
      return true;
  }
  return false;
}
