/**
 * Jupyter messaging protocol (v5.3): connection files, HMAC-SHA256 signatures, message framing.
 *
 * A message on the wire is `[identities..., "<IDS|MSG>", signature, header, parent_header, metadata,
 * content, buffers...]`; the signature is the hex HMAC-SHA256, under the connection key, of the four
 * JSON parts concatenated. Kernels drop badly signed messages silently, so signing must be exact.
 *
 * @module
 */

/** The contents of a Jupyter connection file. */
export interface ConnectionInfo {
  readonly ip: string;
  readonly transport: "tcp";
  readonly shell_port: number;
  readonly iopub_port: number;
  readonly stdin_port: number;
  readonly control_port: number;
  readonly hb_port: number;
  readonly key: string;
  readonly signature_scheme: "hmac-sha256";
  readonly kernel_name: string;
}

/** A Jupyter message header. */
export interface MessageHeader {
  readonly msg_id: string;
  readonly session: string;
  readonly username: string;
  readonly date: string;
  readonly msg_type: string;
  readonly version: string;
}

/** A decoded Jupyter message. `parent_header` is `{}` when the message has no parent. */
export interface JupyterMessage<C = Record<string, unknown>> {
  readonly identities: readonly Uint8Array[];
  readonly header: MessageHeader;
  readonly parent_header: Partial<MessageHeader>;
  readonly metadata: Record<string, unknown>;
  readonly content: C;
  readonly buffers: readonly Uint8Array[];
}

/** The protocol version this client speaks. */
export const PROTOCOL_VERSION = "5.3";
/** The frame separating routing identities from the message. */
export const DELIMITER = "<IDS|MSG>";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Finds `count` distinct free TCP ports on `hostname` by binding listeners on port 0 (all held open at
 * once so the ports differ), then closing them.
 *
 * @param count How many ports.
 * @param hostname Interface to bind (default 127.0.0.1).
 * @returns The port numbers.
 */
export function freePorts(count: number, hostname = "127.0.0.1"): number[] {
  const listeners: Deno.Listener[] = [];
  try {
    for (let i = 0; i < count; i++) listeners.push(Deno.listen({ hostname, port: 0, transport: "tcp" }));
    return listeners.map((l) => (l.addr as Deno.NetAddr).port);
  } finally {
    for (const l of listeners) l.close();
  }
}

/** A random lowercase hex string of `bytes` random bytes. */
export function randomHex(bytes: number): string {
  const b = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/**
 * A fresh connection description on 127.0.0.1 with free ports and a random key.
 *
 * @example
 * ```ts
 * const info = createConnectionInfo();
 * await Deno.writeTextFile("kernel.json", JSON.stringify(info));
 * ```
 */
export function createConnectionInfo(): ConnectionInfo {
  const [shell, iopub, stdin, control, hb] = freePorts(5) as [number, number, number, number, number];
  return {
    ip: "127.0.0.1",
    transport: "tcp",
    shell_port: shell,
    iopub_port: iopub,
    stdin_port: stdin,
    control_port: control,
    hb_port: hb,
    key: randomHex(32),
    signature_scheme: "hmac-sha256",
    kernel_name: "deno",
  };
}

/** Signs and verifies messages with HMAC-SHA256 under a connection key. */
export class Signer {
  #key: Promise<CryptoKey>;

  /** @param key The connection file's `key` (used as UTF-8 bytes, as Jupyter does). */
  constructor(key: string) {
    this.#key = crypto.subtle.importKey(
      "raw",
      encoder.encode(key),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign", "verify"],
    );
  }

  /**
   * Hex HMAC-SHA256 of the concatenated parts.
   *
   * @param parts header, parent_header, metadata, content, as sent (JSON bytes).
   * @returns The lowercase hex signature.
   */
  async sign(parts: readonly Uint8Array[]): Promise<string> {
    const sig = await crypto.subtle.sign("HMAC", await this.#key, concat(parts));
    return Array.from(new Uint8Array(sig), (x) => x.toString(16).padStart(2, "0")).join("");
  }

  /**
   * Checks a hex signature in constant time (via `crypto.subtle.verify`).
   *
   * @returns Whether `signature` is the HMAC of `parts`.
   */
  async verify(parts: readonly Uint8Array[], signature: string): Promise<boolean> {
    if (!/^[0-9a-f]{64}$/i.test(signature)) return false;
    const sig = new Uint8Array(32);
    for (let i = 0; i < 32; i++) sig[i] = parseInt(signature.slice(2 * i, 2 * i + 2), 16);
    return await crypto.subtle.verify("HMAC", await this.#key, sig, concat(parts));
  }
}

/** Builds headers for one client session. */
export class Session {
  /** This session's id (a UUID). */
  readonly id: string = crypto.randomUUID();
  readonly username: string;

  constructor(username = "notebook-runner") {
    this.username = username;
  }

  /** A new header of type `msgType` with a fresh UUID message id. */
  header(msgType: string): MessageHeader {
    return {
      msg_id: crypto.randomUUID(),
      session: this.id,
      username: this.username,
      date: new Date().toISOString(),
      msg_type: msgType,
      version: PROTOCOL_VERSION,
    };
  }
}

/** What {@linkcode encodeMessage} needs. */
export interface OutgoingMessage {
  readonly header: MessageHeader;
  readonly parent_header?: Partial<MessageHeader>;
  readonly metadata?: Record<string, unknown>;
  readonly content: unknown;
  readonly identities?: readonly Uint8Array[];
}

/**
 * Serialises and signs a message into ZMTP frames.
 *
 * @param message The message.
 * @param signer Signer holding the connection key.
 * @returns `[identities..., "<IDS|MSG>", signature, header, parent, metadata, content]`.
 */
export async function encodeMessage(message: OutgoingMessage, signer: Signer): Promise<Uint8Array[]> {
  const parts = [
    encoder.encode(JSON.stringify(message.header)),
    encoder.encode(JSON.stringify(message.parent_header ?? {})),
    encoder.encode(JSON.stringify(message.metadata ?? {})),
    encoder.encode(JSON.stringify(message.content ?? {})),
  ];
  const sig = await signer.sign(parts);
  return [...(message.identities ?? []), encoder.encode(DELIMITER), encoder.encode(sig), ...parts];
}

/** Raised for frames that are not a well-formed Jupyter message. */
export class JupyterProtocolError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "JupyterProtocolError";
  }
}

/**
 * Parses and verifies a message received as ZMTP frames.
 *
 * @param frames The multipart message.
 * @param signer Signer holding the connection key.
 * @returns The message, or `null` when its signature does not verify (callers drop it, as kernels do).
 * @throws {JupyterProtocolError} when the delimiter or a part is missing or a part is not JSON.
 */
export async function decodeMessage(
  frames: readonly Uint8Array[],
  signer: Signer,
): Promise<JupyterMessage | null> {
  const delim = frames.findIndex((f) => f.length === DELIMITER.length && decoder.decode(f) === DELIMITER);
  if (delim < 0) {
    throw new JupyterProtocolError(`Message of ${frames.length} frames has no "${DELIMITER}" delimiter`);
  }
  if (frames.length < delim + 6) {
    throw new JupyterProtocolError(
      `Message has ${frames.length - delim - 1} parts after the delimiter, need 5`,
    );
  }
  const sig = decoder.decode(frames[delim + 1]);
  const parts = frames.slice(delim + 2, delim + 6);
  if (!(await signer.verify(parts, sig))) return null;
  const [header, parent, metadata, content] = parts.map((p, i) => {
    try {
      return JSON.parse(decoder.decode(p));
    } catch (err) {
      const name = ["header", "parent_header", "metadata", "content"][i];
      throw new JupyterProtocolError(`Message ${name} is not valid JSON`, { cause: err });
    }
  });
  if (typeof header?.msg_type !== "string") throw new JupyterProtocolError("Message header has no msg_type");
  return {
    identities: frames.slice(0, delim),
    header,
    parent_header: parent ?? {},
    metadata: metadata ?? {},
    content: content ?? {},
    buffers: frames.slice(delim + 6),
  };
}

function concat(parts: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
