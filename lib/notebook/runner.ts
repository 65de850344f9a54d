/**
 * Headless notebook execution over the real Deno Jupyter kernel.
 *
 * Each code cell is sent as an `execute_request`; its iopub messages are collected into nbformat outputs.
 * A cell is complete only when the shell `execute_reply` has arrived, iopub has reported `idle` for it,
 * and `quietMs` have passed with no further message for it: Deno 2.9.6 sometimes reports idle before the
 * cell's last outputs (DESIGN.md, "Notebooks and headless execution"). Messages that still arrive late for
 * an earlier cell are routed to that cell by their parent id.
 *
 * @module
 */

import { dirname, resolve } from "node:path";
import { Kernel, type KernelEvent } from "./kernel.ts";
import type { JupyterMessage } from "./protocol.ts";
import {
  type CodeCell,
  DENO_KERNELSPEC,
  denoFmtStdin,
  type DisplayDataOutput,
  type ErrorOutput,
  type ExecuteResultOutput,
  type MimeBundle,
  newCellId,
  type Notebook,
  type Output,
  readNotebook,
  sourceText,
  writeNotebook,
} from "./nbformat.ts";

/** Progress of one cell, reported through {@linkcode ExecuteOptions.onCell}. */
export type CellStatus = "running" | "ok" | "failed" | "timeout";

/** Options of {@linkcode executeNotebook}. */
export interface ExecuteOptions {
  /** Where to write the executed notebook (also written, partially, on failure). */
  readonly outputPath: string;
  /** Kernel working directory (default: the input notebook's folder, so its deno.json applies). */
  readonly cwd?: string;
  /** Extra environment variables for the kernel (notebook parameters); the runner's own pass through. */
  readonly env?: Readonly<Record<string, string>>;
  /** Per-cell time limit in ms (default 600000). On expiry the kernel is killed and the run fails. */
  readonly cellTimeoutMs?: number;
  /** Quiet period after a cell's reply and idle status with no new message for it, in ms (default 250). */
  readonly quietMs?: number;
  /** Time allowed for the kernel to start, in ms (default 60000). */
  readonly startupTimeoutMs?: number;
  /** Called with the notebook cell index when a code cell starts and when it ends. */
  readonly onCell?: (index: number, status: CellStatus) => void;
}

/** The cell that failed and its error. */
export interface CellFailure {
  /** Index of the cell in the notebook (0-based, counting all cell types). */
  readonly cellIndex: number;
  readonly ename: string;
  readonly evalue: string;
  readonly traceback: string[];
  /** The cell's source. */
  readonly source: string;
}

/** Result of {@linkcode executeNotebook}. */
/**
 * The lines that report a failed cell: what failed, the head of its source, the traceback and where the
 * partial notebook is (used by both command-line runners).
 */
export function describeFailure(f: CellFailure, partialNotebook: string, headLines = 10): string[] {
  const source = f.source.split("\n");
  return [
    `cell index ${f.cellIndex}: ${f.ename}: ${f.evalue}`,
    "--- cell source (head) ---",
    ...source.slice(0, headLines),
    ...(source.length > headLines ? ["..."] : []),
    "--- traceback ---",
    ...f.traceback,
    `--- partial notebook written to ${partialNotebook} ---`,
  ];
}

export interface ExecuteResult {
  /** Number of cells in the notebook (all types). */
  readonly cells: number;
  /** Number of code cells sent to the kernel, the failed one included. Empty code cells are skipped. */
  readonly executed: number;
  /** Set when a cell failed, timed out, or the kernel died; later cells were not run. */
  readonly failed?: CellFailure;
  /** Wall time, kernel start and shutdown included. */
  readonly durationMs: number;
  /** Where the executed notebook was written. */
  readonly outputPath: string;
}

/**
 * Executes a notebook on a fresh Deno kernel and writes the executed notebook (nbformat 4.5+) to
 * `options.outputPath`, atomically. Stops at the first failing cell; the partial notebook (cells so far,
 * the failing cell with its error output, later code cells cleared) is written all the same.
 *
 * @param inputPath The .ipynb file to run.
 * @param options Output path, working directory, environment, timeouts, progress callback.
 * @returns Counts, duration and, if a cell failed, the failure. A failed cell does not throw.
 * @throws {NotebookFormatError} when the input is not an nbformat 4 notebook.
 * @throws {KernelError} when the kernel cannot be started.
 *
 * @example
 * ```ts
 * const result = await executeNotebook("notebooks/01-setup.ipynb", { outputPath: "runs/nb/01-setup.ipynb" });
 * if (result.failed) console.error(result.failed.ename, result.failed.evalue);
 * ```
 */
export async function executeNotebook(inputPath: string, options: ExecuteOptions): Promise<ExecuteResult> {
  const started = performance.now();
  const cellTimeoutMs = options.cellTimeoutMs ?? 600_000;
  const quietMs = options.quietMs ?? 250;
  if (!(cellTimeoutMs > 0)) throw new RangeError(`cellTimeoutMs must be > 0, got ${cellTimeoutMs}`);
  if (!(quietMs >= 0)) throw new RangeError(`quietMs must be >= 0, got ${quietMs}`);
  const input = await readNotebook(inputPath);
  const nb = prepareOutputNotebook(input);
  const cwd = options.cwd ?? dirname(resolve(inputPath));
  const kernel = await Kernel.start({
    cwd,
    ...(options.env ? { env: options.env } : {}),
    ...(options.startupTimeoutMs !== undefined ? { startupTimeoutMs: options.startupTimeoutMs } : {}),
  });
  const finish = async (executed: number, failed?: CellFailure): Promise<ExecuteResult> => {
    await kernel.shutdown();
    await writeNotebook(options.outputPath, nb);
    const result = { cells: nb.cells.length, executed, durationMs: performance.now() - started };
    return { ...result, ...(failed ? { failed } : {}), outputPath: options.outputPath };
  };
  try {
    if (kernel.kernelInfo.language_info !== undefined) {
      nb.metadata.language_info = kernel.kernelInfo.language_info as Record<string, unknown>;
    }
    const run = new Run(kernel, { cellTimeoutMs, quietMs, notebookPath: inputPath });
    let executed = 0;
    for (const [index, cell] of nb.cells.entries()) {
      if (cell.cell_type !== "code") continue;
      const source = sourceText(cell.source);
      if (source.trim() === "") continue;
      options.onCell?.(index, "running");
      executed++;
      const outcome = await run.cell(index, cell, source);
      if (outcome.kind === "ok") {
        options.onCell?.(index, "ok");
        continue;
      }
      const error = outcome.error;
      if (!outcome.shown) run.collectorOf(cell).push(error);
      options.onCell?.(index, outcome.kind === "timeout" ? "timeout" : "failed");
      return await finish(executed, {
        cellIndex: index,
        ename: error.ename,
        evalue: error.evalue,
        traceback: error.traceback,
        source,
      });
    }
    return await finish(executed);
  } finally {
    await kernel.shutdown();
  }
}

/** A deep copy of the input with nbformat 4.5 cell ids, the Deno kernelspec, and code outputs cleared. */
function prepareOutputNotebook(input: Notebook): Notebook {
  const nb = structuredClone(input);
  nb.nbformat_minor = Math.max(5, nb.nbformat_minor);
  nb.metadata.kernelspec = { ...DENO_KERNELSPEC };
  const ids = new Set<string>();
  for (const cell of nb.cells) {
    if (cell.id === undefined || !/^[a-zA-Z0-9-_]{1,64}$/.test(cell.id) || ids.has(cell.id)) {
      cell.id = newCellId();
    }
    ids.add(cell.id);
    if (cell.cell_type === "code") {
      cell.outputs = [];
      cell.execution_count = null;
    }
  }
  return nb;
}

type CellOutcome =
  | { readonly kind: "ok" }
  | {
    readonly kind: "error" | "timeout" | "died";
    readonly error: ErrorOutput;
    /** Whether the error output is already among the cell's outputs (sent by the kernel). */
    readonly shown?: boolean;
  };

/** Turns one cell's iopub messages into nbformat outputs, in place on the cell. */
class OutputCollector {
  readonly cell: CodeCell;
  /** Set by clear_output(wait=true): clear just before the next output. */
  #pendingClear = false;
  #displays: Map<string, Set<DisplayDataOutput | ExecuteResultOutput>>;

  constructor(cell: CodeCell, displays: Map<string, Set<DisplayDataOutput | ExecuteResultOutput>>) {
    this.cell = cell;
    this.#displays = displays;
  }

  /** Whether an error output is present. */
  get hasError(): boolean {
    return this.cell.outputs.some((o) => o.output_type === "error");
  }

  /** The first error output, if any. */
  get firstError(): ErrorOutput | undefined {
    return this.cell.outputs.find((o): o is ErrorOutput => o.output_type === "error");
  }

  /** Appends an output (honouring a pending clear), merging consecutive streams of the same name. */
  push(output: Output): void {
    if (this.#pendingClear) {
      this.cell.outputs = [];
      this.#pendingClear = false;
    }
    const last = this.cell.outputs.at(-1);
    if (output.output_type === "stream" && last?.output_type === "stream" && last.name === output.name) {
      last.text = sourceText(last.text) + sourceText(output.text);
      return;
    }
    this.cell.outputs.push(output);
  }

  /** Applies one iopub message parented to this cell's request. */
  handle(msg: JupyterMessage): void {
    const c = msg.content;
    switch (msg.header.msg_type) {
      case "stream":
        this.push({
          output_type: "stream",
          name: c.name === "stderr" ? "stderr" : "stdout",
          text: typeof c.text === "string" ? c.text : String(c.text ?? ""),
        });
        break;
      case "display_data": {
        const out: DisplayDataOutput = {
          output_type: "display_data",
          data: bundle(c.data),
          metadata: meta(c.metadata),
        };
        this.push(out);
        this.#register(c, out);
        break;
      }
      case "execute_result": {
        const count = typeof c.execution_count === "number" ? c.execution_count : null;
        const out: ExecuteResultOutput = {
          output_type: "execute_result",
          data: bundle(c.data),
          metadata: meta(c.metadata),
          execution_count: count,
        };
        this.push(out);
        this.#register(c, out);
        break;
      }
      case "update_display_data": {
        const id = displayId(c);
        for (const out of (id === undefined ? undefined : this.#displays.get(id)) ?? []) {
          out.data = bundle(c.data);
          out.metadata = meta(c.metadata);
        }
        break;
      }
      case "error":
        this.push({
          output_type: "error",
          ename: String(c.ename ?? "Error"),
          evalue: String(c.evalue ?? ""),
          traceback: Array.isArray(c.traceback) ? c.traceback.map(String) : [],
        });
        break;
      case "clear_output":
        if (c.wait === true) this.#pendingClear = true;
        else {
          this.cell.outputs = [];
          this.#pendingClear = false;
        }
        break;
      case "execute_input":
        if (typeof c.execution_count === "number" && this.cell.execution_count === null) {
          this.cell.execution_count = c.execution_count;
        }
        break;
    }
  }

  #register(content: Record<string, unknown>, out: DisplayDataOutput | ExecuteResultOutput): void {
    const id = displayId(content);
    if (id === undefined) return;
    let set = this.#displays.get(id);
    if (!set) this.#displays.set(id, set = new Set());
    set.add(out);
  }
}

function bundle(x: unknown): MimeBundle {
  return typeof x === "object" && x !== null ? x as MimeBundle : {};
}

function meta(x: unknown): Record<string, unknown> {
  return typeof x === "object" && x !== null ? x as Record<string, unknown> : {};
}

function displayId(content: Record<string, unknown>): string | undefined {
  const t = content.transient;
  if (typeof t !== "object" || t === null) return undefined;
  const id = (t as Record<string, unknown>).display_id;
  return typeof id === "string" ? id : undefined;
}

/** One notebook run on one kernel: routes messages to cells by parent id. */
class Run {
  #kernel: Kernel;
  #cellTimeoutMs: number;
  #quietMs: number;
  #notebookPath: string;
  #byMsgId = new Map<string, OutputCollector>();
  #byCell = new Map<CodeCell, OutputCollector>();
  #displays = new Map<string, Set<DisplayDataOutput | ExecuteResultOutput>>();

  constructor(kernel: Kernel, o: { cellTimeoutMs: number; quietMs: number; notebookPath: string }) {
    this.#kernel = kernel;
    this.#cellTimeoutMs = o.cellTimeoutMs;
    this.#quietMs = o.quietMs;
    this.#notebookPath = o.notebookPath;
  }

  collectorOf(cell: CodeCell): OutputCollector {
    let c = this.#byCell.get(cell);
    if (!c) this.#byCell.set(cell, c = new OutputCollector(cell, this.#displays));
    return c;
  }

  /** Executes one cell and waits until reply + idle + quiet period (or failure/timeout). */
  async cell(index: number, cell: CodeCell, source: string): Promise<CellOutcome> {
    const kernel = this.#kernel;
    const collector = this.collectorOf(cell);
    const outputMark = kernel.outputMark();
    const header = await kernel.request("execute_request", {
      code: source,
      silent: false,
      store_history: true,
      user_expressions: {},
      allow_stdin: false,
      stop_on_error: true,
    });
    this.#byMsgId.set(header.msg_id, collector);
    const deadline = Date.now() + this.#cellTimeoutMs;
    let reply: Record<string, unknown> | undefined;
    let idle = false;
    let lastActivity = Date.now();
    while (true) {
      const now = Date.now();
      if (now >= deadline) {
        await kernel.shutdown();
        const seconds = Math.round(this.#cellTimeoutMs / 100) / 10;
        const evalue = `Cell ${index} timed out after ${seconds} s`;
        return {
          kind: "timeout",
          error: {
            output_type: "error",
            ename: "CellTimeoutError",
            evalue,
            traceback: [`CellTimeoutError: ${evalue}`],
          },
        };
      }
      let wait = deadline - now;
      if (reply && idle) {
        const quietLeft = lastActivity + this.#quietMs - now;
        if (quietLeft <= 0) break;
        wait = Math.min(wait, quietLeft);
      }
      const event = await kernel.next(wait);
      if (!event) continue;
      const died = this.#fatal(event, index, outputMark);
      if (died) return died;
      if (event.kind === "shell") {
        if (
          event.msg.header.msg_type === "execute_reply" && event.msg.parent_header.msg_id === header.msg_id
        ) {
          reply = event.msg.content;
          if (typeof reply.execution_count === "number") cell.execution_count = reply.execution_count;
          lastActivity = Date.now();
        }
        continue;
      }
      if (event.kind !== "iopub") continue;
      const parent = event.msg.parent_header.msg_id;
      const target = parent === undefined ? undefined : this.#byMsgId.get(parent);
      if (!target) continue;
      target.handle(event.msg);
      if (target !== collector) continue;
      lastActivity = Date.now();
      if (event.msg.header.msg_type === "status" && event.msg.content.execution_state === "idle") idle = true;
    }
    const status = reply?.status;
    if (status === "ok") return { kind: "ok" };
    const shown = collector.firstError;
    if (shown) return { kind: "error", error: shown, shown: true };
    return { kind: "error", error: await this.#errorFromReply(reply ?? {}, index, source, outputMark) };
  }

  /** A failure outcome for the kernel dying or a channel breaking; undefined for ordinary events. */
  #fatal(event: KernelEvent, index: number, outputMark: number): CellOutcome | undefined {
    if (event.kind !== "exit" && event.kind !== "error") return undefined;
    const output = this.#kernel.outputSince(outputMark).trimEnd();
    const tail = output ? ["--- kernel output ---", ...output.split("\n").slice(-30)] : [];
    const evalue = event.kind === "exit"
      ? `Kernel exited (code ${event.code}${
        event.signal ? `, ${event.signal}` : ""
      }) while running cell ${index}`
      : `Kernel ${event.channel} channel failed while running cell ${index}: ${event.error.message}`;
    return {
      kind: "died",
      error: {
        output_type: "error",
        ename: "KernelDiedError",
        evalue,
        traceback: [`KernelDiedError: ${evalue}`, ...tail],
      },
    };
  }

  /**
   * The error output for a failed execute_reply that came with no iopub error (syntax errors, failed
   * imports). Deno 2.9.6 then replies `Error: Execution failed` with no traceback; a parse of the source
   * with `deno fmt` recovers the syntax error and its position when there is one.
   */
  async #errorFromReply(
    reply: Record<string, unknown>,
    index: number,
    source: string,
    outputMark: number,
  ): Promise<ErrorOutput> {
    const where = `notebook "${this.#notebookPath}", cell ${index}`;
    const traceback = Array.isArray(reply.traceback) ? reply.traceback.map(String) : [];
    const ename = typeof reply.ename === "string" && reply.ename ? reply.ename : undefined;
    const evalue = typeof reply.evalue === "string" ? reply.evalue : undefined;
    if (reply.status === "aborted") {
      const msg = `The kernel aborted the execution of ${where}`;
      return { output_type: "error", ename: "ExecutionAborted", evalue: msg, traceback: [msg] };
    }
    if (traceback.length > 0 && ename) {
      return { output_type: "error", ename, evalue: evalue ?? "", traceback };
    }
    const parse = await parseError(source, index);
    if (parse) {
      return { output_type: "error", ename: "SyntaxError", evalue: parse.message, traceback: parse.lines };
    }
    const detail = ename || evalue ? `${ename ?? "Error"}: ${evalue ?? ""}` : "no ename/evalue";
    const msg = `The kernel reported an error without details (${detail}) in ${where}; ` +
      `a failed import (missing module or package) or a type/transpile error is the likely cause`;
    const output = this.#kernel.outputSince(outputMark).trimEnd();
    return {
      output_type: "error",
      ename: ename ?? "KernelError",
      evalue: msg,
      traceback: [msg, ...(output ? ["--- kernel output ---", ...output.split("\n").slice(-30)] : [])],
    };
  }
}

/** Parses a cell with `deno fmt` (no config); returns its syntax error, if any. */
async function parseError(
  source: string,
  index: number,
): Promise<{ message: string; lines: string[] } | undefined> {
  try {
    const { code, stderr } = await denoFmtStdin(["--no-config", "--ext=ts"], source);
    if (code === 0) return undefined;
    const text = stderr;
    const body = text.split(/\n\s*Stack backtrace:/)[0] ?? text;
    const lines = body.trimEnd().split("\n").map((l) =>
      l.replace(/^error: /, "").replace(
        /file:\/\/\S*_stdin\.ts:(\d+):(\d+)/,
        `cell ${index}, line $1, column $2`,
      )
    );
    const message = (lines[0] ?? "").replace(/^SyntaxError: /, "");
    if (!message) return undefined;
    return { message, lines };
  } catch {
    return undefined;
  }
}
