/**
 * Headless execution of Deno Jupyter notebooks over the real kernel, in pure TypeScript.
 *
 * @example
 * ```ts
 * import { executeNotebook } from "./lib/notebook/mod.ts";
 * const result = await executeNotebook("notebooks/01.ipynb", { outputPath: "runs/nb/01.ipynb" });
 * ```
 *
 * @module
 */

export {
  type CellFailure,
  type CellStatus,
  executeNotebook,
  type ExecuteOptions,
  type ExecuteResult,
} from "./runner.ts";
export { Kernel, KernelError, type KernelEvent, type KernelStartOptions } from "./kernel.ts";
export {
  type Cell,
  type CodeCell,
  codeCell,
  DENO_KERNELSPEC,
  type DisplayDataOutput,
  type ErrorOutput,
  type ExecuteResultOutput,
  formatNotebook,
  type MarkdownCell,
  markdownCell,
  type MimeBundle,
  type MultilineString,
  newCellId,
  newNotebook,
  type Notebook,
  NotebookFormatError,
  type NotebookMetadata,
  type Output,
  parseNotebook,
  type RawCell,
  readNotebook,
  sourceText,
  type StreamOutput,
  writeNotebook,
} from "./nbformat.ts";
export {
  type ConnectionInfo,
  createConnectionInfo,
  decodeMessage,
  DELIMITER,
  encodeMessage,
  freePorts,
  type JupyterMessage,
  JupyterProtocolError,
  type MessageHeader,
  type OutgoingMessage,
  PROTOCOL_VERSION,
  randomHex,
  Session,
  Signer,
} from "./protocol.ts";
export { type ZmtpConnectOptions, ZmtpError, ZmtpSocket, type ZmtpSocketType } from "./zmtp.ts";
