/**
 * A minimal ZMTP 3.0 client over TCP (`Deno.connect`), NULL security mechanism only.
 *
 * Enough of ZeroMQ to talk to a Jupyter kernel: a DEALER socket (shell, control) and a SUB socket
 * (iopub), one peer each, no reconnection. Written because the npm `zeromq` addon is unreliable under
 * Deno (see DESIGN.md, "Notebooks and headless execution").
 *
 * Wire format (https://rfc.zeromq.org/spec/23/):
 * - greeting: signature `FF 00*8 7F`, version `03 00`, mechanism `"NULL"` padded to 20 bytes,
 *   as-server `00`, 31 bytes of filler (64 bytes in all);
 * - then a READY command carrying the `Socket-Type` and `Identity` properties, answered by the peer's;
 * - then frames: a flags byte (bit 0 MORE, bit 1 LONG, bit 2 COMMAND) and a 1-byte or 8-byte
 *   big-endian size, then the body. A message is a run of frames with MORE set on all but the last.
 *
 * @module
 */

/** Socket types this client implements. */
export type ZmtpSocketType = "DEALER" | "SUB";

/** Options of {@linkcode ZmtpSocket.connect}. */
export interface ZmtpConnectOptions {
  /** Host to connect to. */
  readonly hostname: string;
  /** TCP port. */
  readonly port: number;
  /** Socket type announced in READY. */
  readonly socketType: ZmtpSocketType;
  /** Identity announced in READY (DEALER routing id); default: none. */
  readonly identity?: Uint8Array;
  /** Time allowed for the TCP connection and the handshake, in ms (default 5000). */
  readonly timeoutMs?: number;
}

/** Raised when the peer breaks the ZMTP protocol or rejects the handshake. */
export class ZmtpError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ZmtpError";
  }
}

const FLAG_MORE = 0x01;
const FLAG_LONG = 0x02;
const FLAG_COMMAND = 0x04;
const GREETING_SIZE = 64;
/** Refuse frames above this size rather than allocate without bound on a corrupted stream. */
const MAX_FRAME_SIZE = 1 << 30;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Buffered reader over a byte stream: returns exactly the bytes asked for, across partial reads. */
class ByteReader {
  #conn: Deno.Conn;
  #buf = new Uint8Array(64 * 1024);
  #start = 0;
  #end = 0;

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  /** Reads exactly `n` bytes; returns `null` on a clean end of stream before the first byte. */
  async readExact(n: number): Promise<Uint8Array | null> {
    while (this.#end - this.#start < n) {
      if (this.#buf.length - this.#start < n) this.#grow(n);
      if (this.#end === this.#buf.length) this.#compact();
      const got = await this.#conn.read(this.#buf.subarray(this.#end));
      if (got === null) {
        if (this.#end === this.#start) return null;
        throw new ZmtpError(
          `Connection closed mid-frame: wanted ${n} bytes, got ${this.#end - this.#start}`,
        );
      }
      this.#end += got;
    }
    const out = this.#buf.slice(this.#start, this.#start + n);
    this.#start += n;
    if (this.#start === this.#end) this.#start = this.#end = 0;
    return out;
  }

  #compact(): void {
    this.#buf.copyWithin(0, this.#start, this.#end);
    this.#end -= this.#start;
    this.#start = 0;
  }

  #grow(n: number): void {
    const size = Math.max(this.#buf.length, n * 2);
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(this.#start, this.#end));
    this.#end -= this.#start;
    this.#start = 0;
    this.#buf = next;
  }
}

/** Encodes one frame (flags + size + body). */
function encodeFrame(body: Uint8Array, flags: number): Uint8Array {
  const long = body.length > 255;
  const head = long ? 9 : 2;
  const out = new Uint8Array(head + body.length);
  out[0] = flags | (long ? FLAG_LONG : 0);
  if (long) new DataView(out.buffer).setBigUint64(1, BigInt(body.length));
  else out[1] = body.length;
  out.set(body, head);
  return out;
}

/** Encodes a ZMTP command body: name-size, name, then properties (name-size, name, 4-byte value-size, value). */
function encodeCommand(name: string, properties: Readonly<Record<string, Uint8Array>>): Uint8Array {
  const parts: Uint8Array[] = [];
  const nameBytes = encoder.encode(name);
  parts.push(Uint8Array.of(nameBytes.length), nameBytes);
  for (const [key, value] of Object.entries(properties)) {
    const keyBytes = encoder.encode(key);
    const size = new Uint8Array(4);
    new DataView(size.buffer).setUint32(0, value.length);
    parts.push(Uint8Array.of(keyBytes.length), keyBytes, size, value);
  }
  return concat(parts);
}

/** Parses a command body into its name and properties. */
function decodeCommand(body: Uint8Array): { name: string; properties: Map<string, Uint8Array> } {
  const nameLen = body[0] ?? 0;
  const name = decoder.decode(body.subarray(1, 1 + nameLen));
  const properties = new Map<string, Uint8Array>();
  let at = 1 + nameLen;
  if (name !== "READY") return { name, properties };
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  while (at < body.length) {
    const keyLen = body[at] ?? 0;
    const key = decoder.decode(body.subarray(at + 1, at + 1 + keyLen));
    at += 1 + keyLen;
    if (at + 4 > body.length) throw new ZmtpError(`Malformed READY property "${key}"`);
    const valueLen = view.getUint32(at);
    at += 4;
    properties.set(key.toLowerCase(), body.slice(at, at + valueLen));
    at += valueLen;
  }
  return { name, properties };
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** The 64-byte ZMTP 3.0 greeting for the NULL mechanism, as a client. */
function greeting(): Uint8Array {
  const g = new Uint8Array(GREETING_SIZE);
  g[0] = 0xff;
  g[9] = 0x7f;
  g[10] = 3;
  g[11] = 0;
  g.set(encoder.encode("NULL"), 12);
  g[32] = 0; // as-server
  return g;
}

const PEER_TYPES: Readonly<Record<ZmtpSocketType, readonly string[]>> = {
  DEALER: ["ROUTER", "DEALER", "REP"],
  SUB: ["PUB", "XPUB"],
};

/**
 * One ZMTP connection to one peer, after a completed handshake.
 *
 * @example
 * ```ts
 * const sub = await ZmtpSocket.connect({ hostname: "127.0.0.1", port: 5556, socketType: "SUB" });
 * await sub.subscribe("");
 * const frames = await sub.receive(); // one multipart message, or null at end of stream
 * sub.close();
 * ```
 */
export class ZmtpSocket {
  readonly socketType: ZmtpSocketType;
  /** The peer's Socket-Type from its READY command. */
  readonly peerType: string;
  #conn: Deno.Conn;
  #reader: ByteReader;
  #closed = false;
  #writing: Promise<void> = Promise.resolve();

  private constructor(conn: Deno.Conn, reader: ByteReader, socketType: ZmtpSocketType, peerType: string) {
    this.#conn = conn;
    this.#reader = reader;
    this.socketType = socketType;
    this.peerType = peerType;
  }

  /**
   * Connects and performs the ZMTP 3.0 handshake (greeting + READY exchange).
   *
   * @param options Where to connect and what to announce.
   * @returns The connected socket.
   * @throws {Deno.errors.ConnectionRefused} when nothing listens on the port (callers may retry).
   * @throws {ZmtpError} when the peer speaks another version or mechanism, sends ERROR, is an incompatible
   *   socket type, or the handshake exceeds `timeoutMs`.
   */
  static async connect(options: ZmtpConnectOptions): Promise<ZmtpSocket> {
    const { hostname, port, socketType } = options;
    const where = `${hostname}:${port}`;
    const timeoutMs = options.timeoutMs ?? 5000;
    const conn = await Deno.connect({ hostname, port, transport: "tcp" });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        conn.close();
      } catch { /* already closed */ }
    }, timeoutMs);
    try {
      conn.setNoDelay(true);
      const reader = new ByteReader(conn);
      await writeAll(conn, greeting());
      const peerGreeting = await reader.readExact(GREETING_SIZE);
      if (peerGreeting === null) {
        throw new ZmtpError(`ZMTP peer ${where} closed the connection during greeting`);
      }
      if (peerGreeting[0] !== 0xff || peerGreeting[9] !== 0x7f) {
        throw new ZmtpError(`ZMTP peer ${where} sent an invalid greeting signature`);
      }
      if ((peerGreeting[10] ?? 0) < 3) {
        throw new ZmtpError(
          `ZMTP peer ${where} speaks ZMTP ${peerGreeting[10]}.${peerGreeting[11]}, need 3.x`,
        );
      }
      const mechanism = decoder.decode(peerGreeting.subarray(12, 32)).replace(/\0+$/, "");
      if (mechanism !== "NULL") {
        throw new ZmtpError(
          `ZMTP peer ${where} wants security mechanism "${mechanism}", only NULL is supported`,
        );
      }
      const props: Record<string, Uint8Array> = { "Socket-Type": encoder.encode(socketType) };
      if (options.identity !== undefined) props["Identity"] = options.identity;
      await writeAll(conn, encodeFrame(encodeCommand("READY", props), FLAG_COMMAND));
      const first = await readFrame(reader);
      if (first === null) throw new ZmtpError(`ZMTP peer ${where} closed the connection before READY`);
      if (!first.command) throw new ZmtpError(`ZMTP peer ${where} sent a message before READY`);
      const cmd = decodeCommand(first.body);
      if (cmd.name === "ERROR") {
        const len = first.body[6] ?? 0;
        const reason = decoder.decode(first.body.subarray(7, 7 + len));
        throw new ZmtpError(`ZMTP peer ${where} rejected the handshake: ${reason}`);
      }
      if (cmd.name !== "READY") {
        throw new ZmtpError(`ZMTP peer ${where} sent command "${cmd.name}", expected READY`);
      }
      const peerType = decoder.decode(cmd.properties.get("socket-type") ?? new Uint8Array());
      if (!PEER_TYPES[socketType].includes(peerType)) {
        throw new ZmtpError(
          `ZMTP peer ${where} is a ${peerType || "(unnamed)"} socket, incompatible with ${socketType}`,
        );
      }
      clearTimeout(timer);
      return new ZmtpSocket(conn, reader, socketType, peerType);
    } catch (err) {
      clearTimeout(timer);
      try {
        conn.close();
      } catch { /* already closed */ }
      if (timedOut) {
        throw new ZmtpError(`ZMTP handshake with ${where} timed out after ${timeoutMs} ms`, { cause: err });
      }
      throw err;
    }
  }

  /**
   * Sends one multipart message. Sends are serialised, so concurrent calls never interleave frames.
   *
   * @param frames The message parts (at least one).
   * @throws {ZmtpError} when called with no frames or on a closed socket.
   */
  send(frames: readonly Uint8Array[]): Promise<void> {
    if (frames.length === 0) return Promise.reject(new ZmtpError("Cannot send an empty ZMTP message"));
    if (this.#closed) {
      return Promise.reject(new ZmtpError(`Cannot send on a closed ${this.socketType} socket`));
    }
    const bytes = concat(frames.map((f, i) => encodeFrame(f, i < frames.length - 1 ? FLAG_MORE : 0)));
    const next = this.#writing.then(() => writeAll(this.#conn, bytes));
    this.#writing = next.catch(() => {});
    return next;
  }

  /**
   * Subscribes a SUB socket to a topic prefix (ZMTP 3.0: a message `0x01` + topic; `""` = everything).
   *
   * @param topic The topic prefix.
   * @throws {ZmtpError} on a socket that is not SUB.
   */
  subscribe(topic: string | Uint8Array = ""): Promise<void> {
    if (this.socketType !== "SUB") {
      return Promise.reject(new ZmtpError(`subscribe() needs a SUB socket, this is ${this.socketType}`));
    }
    const t = typeof topic === "string" ? encoder.encode(topic) : topic;
    return this.send([concat([Uint8Array.of(1), t])]);
  }

  /**
   * Receives the next multipart message; commands (PING and the like) are skipped.
   *
   * @returns The message's frames, or `null` once the peer closed the connection (or {@linkcode close} was called).
   * @throws {ZmtpError} when the stream is malformed or closed mid-message.
   */
  async receive(): Promise<Uint8Array[] | null> {
    const frames: Uint8Array[] = [];
    while (true) {
      let frame: Frame | null;
      try {
        frame = await readFrame(this.#reader);
      } catch (err) {
        if (this.#closed) return null;
        if (err instanceof Deno.errors.BadResource || err instanceof Deno.errors.Interrupted) return null;
        if (err instanceof Deno.errors.ConnectionReset) return null;
        throw err;
      }
      if (frame === null) {
        if (frames.length > 0) throw new ZmtpError("Connection closed in the middle of a multipart message");
        return null;
      }
      if (frame.command) continue;
      frames.push(frame.body);
      if (!frame.more) return frames;
    }
  }

  /** Closes the connection; a pending {@linkcode receive} then resolves to `null`. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch { /* already closed */ }
  }
}

interface Frame {
  readonly more: boolean;
  readonly command: boolean;
  readonly body: Uint8Array;
}

async function readFrame(reader: ByteReader): Promise<Frame | null> {
  const flagsBytes = await reader.readExact(1);
  if (flagsBytes === null) return null;
  const flags = flagsBytes[0] ?? 0;
  let size: number;
  if (flags & FLAG_LONG) {
    const sizeBytes = await reader.readExact(8);
    if (sizeBytes === null) throw new ZmtpError("Connection closed inside a frame header");
    const big = new DataView(sizeBytes.buffer, sizeBytes.byteOffset, 8).getBigUint64(0);
    if (big > BigInt(MAX_FRAME_SIZE)) throw new ZmtpError(`Refusing a ZMTP frame of ${big} bytes`);
    size = Number(big);
  } else {
    const sizeBytes = await reader.readExact(1);
    if (sizeBytes === null) throw new ZmtpError("Connection closed inside a frame header");
    size = sizeBytes[0] ?? 0;
  }
  const body = size === 0 ? new Uint8Array() : await reader.readExact(size);
  if (body === null) throw new ZmtpError("Connection closed inside a frame body");
  return { more: (flags & FLAG_MORE) !== 0, command: (flags & FLAG_COMMAND) !== 0, body };
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let at = 0;
  while (at < bytes.length) at += await conn.write(bytes.subarray(at));
}
