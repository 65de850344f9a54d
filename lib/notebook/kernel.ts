/**
 * A Deno Jupyter kernel (`deno jupyter --kernel`) run as a child process and spoken to over ZMTP.
 *
 * Facts this module works around (measured with Deno 2.9.6, see DESIGN.md):
 * - the kernel ignores requests in its first ~0.3-0.5 s: `kernel_info_request` is re-sent until answered;
 * - iopub must be subscribed before executing: startup waits for an iopub `status` parented to one of its
 *   kernel_info requests, which proves the subscription is live;
 * - badly signed messages are dropped silently, by the kernel and by this client;
 * - the kernel does not exit when its client disconnects: {@linkcode Kernel.shutdown} kills it (SIGTERM,
 *   then SIGKILL) and a SIGINT/SIGTERM listener plus an `unload` handler kill any kernel still alive, so
 *   none is left behind to make the next start fail with AddrInUse.
 *
 * @module
 */

import { dirname } from "node:path";
import {
  type ConnectionInfo,
  createConnectionInfo,
  decodeMessage,
  encodeMessage,
  type JupyterMessage,
  type MessageHeader,
  Session,
  Signer,
} from "./protocol.ts";
import { ZmtpSocket } from "./zmtp.ts";

/** Something that happened on the kernel's channels or process. */
export type KernelEvent =
  | { readonly kind: "shell"; readonly msg: JupyterMessage }
  | { readonly kind: "iopub"; readonly msg: JupyterMessage }
  | { readonly kind: "exit"; readonly code: number; readonly signal: Deno.Signal | null }
  | { readonly kind: "error"; readonly channel: "shell" | "iopub"; readonly error: Error };

/** Options of {@linkcode Kernel.start}. */
export interface KernelStartOptions {
  /** Working directory of the kernel (default: the current directory). */
  readonly cwd?: string;
  /** Extra environment variables; the runner's environment passes through, and `NO_COLOR=1` is set. */
  readonly env?: Readonly<Record<string, string>>;
  /** Time allowed for the kernel to start and answer kernel_info, in ms (default 60000). */
  readonly startupTimeoutMs?: number;
  /** Deno executable (default `Deno.execPath()`, the one running this code). */
  readonly denoPath?: string;
}

/** Raised when the kernel cannot be started or stops answering. Carries the kernel's stderr tail. */
export class KernelError extends Error {
  /** The last lines the kernel wrote to stderr (and stdout). */
  readonly stderrTail: string;
  constructor(message: string, stderrTail: string, options?: ErrorOptions) {
    super(
      stderrTail.trim() ? `${message}\n--- kernel output (tail) ---\n${stderrTail.trimEnd()}` : message,
      options,
    );
    this.name = "KernelError";
    this.stderrTail = stderrTail;
  }
}

const TAIL_BYTES = 8192;
const RESEND_INFO_MS = 500;
const TERM_GRACE_MS = 2000;

/** Kernels alive in this process: killed on SIGINT/SIGTERM and at unload. */
const liveKernels = new Set<Kernel>();
let signalsInstalled = false;
let unloadInstalled = false;
const SIGNALS: readonly Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];

function onSignal(signal: Deno.Signal): () => void {
  return () => {
    for (const k of liveKernels) k.killNow();
    Deno.exit(signal === "SIGINT" ? 130 : 143);
  };
}
const signalHandlers = new Map(SIGNALS.map((s) => [s, onSignal(s)] as const));

function track(kernel: Kernel): void {
  liveKernels.add(kernel);
  if (!unloadInstalled) {
    globalThis.addEventListener("unload", () => {
      for (const k of liveKernels) k.killNow();
    });
    unloadInstalled = true;
  }
  if (!signalsInstalled) {
    for (const [s, h] of signalHandlers) Deno.addSignalListener(s, h);
    signalsInstalled = true;
  }
}

function untrack(kernel: Kernel): void {
  liveKernels.delete(kernel);
  if (liveKernels.size === 0 && signalsInstalled) {
    for (const [s, h] of signalHandlers) Deno.removeSignalListener(s, h);
    signalsInstalled = false;
  }
}

/** Keeps the last bytes of a stream. */
class Tail {
  #chunks: Uint8Array[] = [];
  #size = 0;
  /** Bytes pushed since the start. */
  total = 0;

  push(chunk: Uint8Array): void {
    this.total += chunk.length;
    this.#chunks.push(chunk);
    this.#size += chunk.length;
    while (this.#size - (this.#chunks[0]?.length ?? 0) >= TAIL_BYTES) {
      this.#size -= this.#chunks.shift()!.length;
    }
  }

  /** The text pushed since `mark` (a past `total`), as far as it is still held. */
  since(mark: number): string {
    const all = new Uint8Array(this.#size);
    let at = 0;
    for (const c of this.#chunks) {
      all.set(c, at);
      at += c.length;
    }
    const keep = Math.min(TAIL_BYTES, this.total - mark, all.length);
    return new TextDecoder().decode(all.subarray(all.length - keep));
  }

  /** The last bytes held, as text. */
  text(): string {
    return this.since(0);
  }
}

/**
 * A running Deno Jupyter kernel.
 *
 * @example
 * ```ts
 * const kernel = await Kernel.start({ cwd: "notebooks" });
 * try {
 *   const id = await kernel.request("execute_request", { code: "1 + 1", silent: false });
 *   const event = await kernel.next(1000); // the next shell/iopub message, or undefined after 1 s
 * } finally {
 *   await kernel.shutdown();
 * }
 * ```
 */
export class Kernel {
  /** The kernel's process id. */
  readonly pid: number;
  /** Path of the connection file passed with `--conn`. */
  readonly connectionFile: string;
  /** The kernel's working directory. */
  readonly cwd: string;
  /** Content of the kernel_info_reply received at startup. */
  kernelInfo: Record<string, unknown> = {};
  /** Incoming messages dropped because their signature did not verify. */
  droppedMessages = 0;

  #child: Deno.ChildProcess;
  #info: ConnectionInfo;
  #signer: Signer;
  #session = new Session();
  #shell?: ZmtpSocket;
  #iopub?: ZmtpSocket;
  #tail = new Tail();
  #events: KernelEvent[] = [];
  #waiter?: () => void;
  #tasks: Promise<unknown>[] = [];
  #exited = false;
  #status: Promise<Deno.CommandStatus>;
  #shutdown?: Promise<void>;

  private constructor(child: Deno.ChildProcess, info: ConnectionInfo, connectionFile: string, cwd: string) {
    this.#child = child;
    this.#info = info;
    this.#signer = new Signer(info.key);
    this.pid = child.pid;
    this.connectionFile = connectionFile;
    this.cwd = cwd;
    this.#status = child.status.then((status) => {
      this.#exited = true;
      this.#push({ kind: "exit", code: status.code, signal: status.signal });
      return status;
    });
    this.#tasks.push(this.#pump(child.stdout), this.#pump(child.stderr));
  }

  /**
   * Starts a kernel, connects shell and iopub, and waits until it answers kernel_info with iopub live.
   *
   * @param options Working directory, environment, timeout.
   * @returns The ready kernel. Call {@linkcode shutdown} when done (also on errors).
   * @throws {KernelError} when the kernel exits or does not answer within `startupTimeoutMs`; the kernel
   *   process is killed before throwing.
   */
  static async start(options: KernelStartOptions = {}): Promise<Kernel> {
    const cwd = options.cwd ?? Deno.cwd();
    const timeoutMs = options.startupTimeoutMs ?? 60_000;
    const deadline = Date.now() + timeoutMs;
    const info = createConnectionInfo();
    const dir = await Deno.makeTempDir({ prefix: "nbrun-" });
    const connectionFile = `${dir}/kernel-${info.shell_port}.json`;
    await Deno.writeTextFile(connectionFile, JSON.stringify(info, null, 2));
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(options.denoPath ?? Deno.execPath(), {
        args: ["jupyter", "--kernel", "--conn", connectionFile],
        cwd,
        env: { ...options.env, NO_COLOR: "1" },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    } catch (err) {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      throw new KernelError(`Cannot start the Deno kernel in "${cwd}": ${(err as Error).message}`, "", {
        cause: err,
      });
    }
    const kernel = new Kernel(child, info, connectionFile, cwd);
    track(kernel);
    try {
      await kernel.#connect(deadline);
      await kernel.#handshake(deadline, timeoutMs);
      return kernel;
    } catch (err) {
      await kernel.shutdown();
      if (err instanceof KernelError) throw err;
      throw new KernelError(
        `Deno kernel in "${cwd}" failed to start: ${(err as Error).message}`,
        kernel.outputTail(),
        {
          cause: err,
        },
      );
    }
  }

  /** Whether the kernel process has exited. */
  get exited(): boolean {
    return this.#exited;
  }

  /** The last ~8 KiB the kernel wrote to stdout/stderr. */
  outputTail(): string {
    return this.#tail.text();
  }

  /** A position in the kernel's stdout/stderr, for {@linkcode outputSince}. */
  outputMark(): number {
    return this.#tail.total;
  }

  /** What the kernel wrote to stdout/stderr since `mark` (at most the last ~8 KiB). */
  outputSince(mark: number): string {
    return this.#tail.since(mark);
  }

  /**
   * Sends a request on the shell channel.
   *
   * @param msgType e.g. `execute_request`.
   * @param content The request content.
   * @returns The request's header (its `msg_id` parents the replies and iopub messages).
   */
  async request(msgType: string, content: Record<string, unknown>): Promise<MessageHeader> {
    if (!this.#shell) throw new KernelError("Kernel shell channel is not connected", this.outputTail());
    const header = this.#session.header(msgType);
    await this.#shell.send(await encodeMessage({ header, content }, this.#signer));
    return header;
  }

  /**
   * The next event (a shell or iopub message, the process exit, a channel error), in arrival order.
   *
   * @param timeoutMs How long to wait; `0` only takes what is already queued.
   * @returns The event, or `undefined` if none came in time.
   */
  async next(timeoutMs: number): Promise<KernelEvent | undefined> {
    if (this.#events.length === 0 && timeoutMs > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#waiter = resolve;
        timer = setTimeout(resolve, timeoutMs);
      });
      clearTimeout(timer);
      this.#waiter = undefined;
    }
    return this.#events.shift();
  }

  /**
   * Kills the process with SIGKILL and removes the connection file, synchronously: for signal and
   * unload handlers, where no await is possible. Prefer {@linkcode shutdown}.
   */
  killNow(): void {
    if (!this.#exited) {
      try {
        this.#child.kill("SIGKILL");
      } catch { /* already gone */ }
    }
    try {
      Deno.removeSync(dirname(this.connectionFile), { recursive: true });
    } catch { /* already removed */ }
  }

  /**
   * Kills the kernel (SIGTERM, then SIGKILL after 2 s), closes the channels, waits for the process and
   * the I/O tasks, and removes the connection file. Idempotent; never throws.
   */
  shutdown(): Promise<void> {
    this.#shutdown ??= this.#doShutdown();
    return this.#shutdown;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.shutdown();
  }

  async #doShutdown(): Promise<void> {
    if (!this.#exited) {
      try {
        this.#child.kill("SIGTERM");
      } catch { /* already gone */ }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const termed = await Promise.race([
        this.#status.then(() => true),
        new Promise<false>((r) => timer = setTimeout(() => r(false), TERM_GRACE_MS)),
      ]);
      clearTimeout(timer);
      if (!termed) {
        try {
          this.#child.kill("SIGKILL");
        } catch { /* already gone */ }
      }
    }
    await this.#status;
    this.#shell?.close();
    this.#iopub?.close();
    await Promise.allSettled(this.#tasks);
    untrack(this);
    await Deno.remove(dirname(this.connectionFile), { recursive: true }).catch(() => {});
    this.#waiter?.();
  }

  #push(event: KernelEvent): void {
    this.#events.push(event);
    this.#waiter?.();
  }

  async #pump(stream: ReadableStream<Uint8Array>): Promise<void> {
    try {
      for await (const chunk of stream) this.#tail.push(chunk);
    } catch { /* stream closed */ }
  }

  async #connect(deadline: number): Promise<void> {
    const connectOne = async (port: number, socketType: "DEALER" | "SUB"): Promise<ZmtpSocket> => {
      while (true) {
        if (this.#exited) {
          throw new KernelError(`Deno kernel in "${this.cwd}" exited during startup`, this.outputTail());
        }
        try {
          return await ZmtpSocket.connect({
            hostname: this.#info.ip,
            port,
            socketType,
            identity: new TextEncoder().encode(`${this.#session.id}-${socketType}`),
            timeoutMs: Math.max(1000, deadline - Date.now()),
          });
        } catch (err) {
          if (!(err instanceof Deno.errors.ConnectionRefused)) throw err;
          if (Date.now() > deadline) {
            throw new KernelError(
              `Deno kernel in "${this.cwd}" never opened port ${port} (${socketType})`,
              this.outputTail(),
            );
          }
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    };
    this.#iopub = await connectOne(this.#info.iopub_port, "SUB");
    await this.#iopub.subscribe("");
    this.#shell = await connectOne(this.#info.shell_port, "DEALER");
    this.#tasks.push(this.#readLoop(this.#shell, "shell"), this.#readLoop(this.#iopub, "iopub"));
  }

  async #readLoop(socket: ZmtpSocket, channel: "shell" | "iopub"): Promise<void> {
    try {
      while (true) {
        const frames = await socket.receive();
        if (frames === null) return;
        const msg = await decodeMessage(frames, this.#signer);
        if (msg === null) {
          this.droppedMessages++;
          continue;
        }
        this.#push(channel === "shell" ? { kind: "shell", msg } : { kind: "iopub", msg });
      }
    } catch (err) {
      this.#push({ kind: "error", channel, error: err as Error });
    }
  }

  /** Re-sends kernel_info_request until a reply arrives and an iopub status parented to one is seen. */
  async #handshake(deadline: number, timeoutMs: number): Promise<void> {
    const sent = new Set<string>();
    let reply: JupyterMessage | undefined;
    let statusSeen = false;
    let lastSend = 0;
    while (!(reply && statusSeen)) {
      const now = Date.now();
      if (now > deadline) {
        const what = reply ? "publish an iopub status for kernel_info" : "answer kernel_info_request";
        throw new KernelError(
          `Deno kernel in "${this.cwd}" did not ${what} within ${timeoutMs / 1000} s (pid ${this.pid})`,
          this.outputTail(),
        );
      }
      if (now - lastSend >= RESEND_INFO_MS) {
        sent.add((await this.request("kernel_info_request", {})).msg_id);
        lastSend = now;
      }
      const event = await this.next(Math.max(1, Math.min(lastSend + RESEND_INFO_MS, deadline) - Date.now()));
      if (!event) continue;
      if (event.kind === "exit") {
        throw new KernelError(
          `Deno kernel in "${this.cwd}" exited during startup (code ${event.code}${
            event.signal ? `, ${event.signal}` : ""
          })`,
          this.outputTail(),
        );
      }
      if (event.kind === "error") throw event.error;
      const parent = event.msg.parent_header.msg_id;
      if (parent === undefined || !sent.has(parent)) continue;
      if (event.kind === "shell" && event.msg.header.msg_type === "kernel_info_reply") reply = event.msg;
      if (event.kind === "iopub" && event.msg.header.msg_type === "status") statusSeen = true;
    }
    this.kernelInfo = reply.content;
  }
}
