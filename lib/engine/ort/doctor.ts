/**
 * CUDA preflight (`deno task doctor`, also run by `device: "cuda"` / `--device cuda`): names exactly
 * which piece of the CUDA execution provider is missing on this machine, before a session fails with
 * a loader error deep inside ONNX Runtime.
 *
 * Checked, in the order ONNX Runtime needs them:
 * 1. the provider libraries `libonnxruntime_providers_cuda.so` and `libonnxruntime_providers_shared.so`
 *    next to onnxruntime-node's `libonnxruntime.so.1` (same version: they are not in the npm package);
 * 2. the CUDA 13 runtime `libcudart.so.13` and cuBLAS `libcublas.so.13`, `libcublasLt.so.13`;
 * 3. cuDNN 9 `libcudnn.so.9`;
 * 4. the NVIDIA driver: `libcuda.so.1` (and `nvidia-smi`, for the driver version).
 * Libraries are found the way the dynamic loader finds them (`LD_LIBRARY_PATH`, the ldconfig cache):
 * each is opened with `dlopen` and closed again. `deno task doctor --help` prints the usage.
 *
 * @module
 */

import { findOrtLibrary } from "./capi.ts";
import { type CliIO, consoleIO, defineCli, parseOrHelp, UsageError } from "../../util/cli.ts";

/** One preflight check. */
export interface PreflightCheck {
  /** What is checked, e.g. "cuDNN 9 (libcudnn.so.9)". */
  readonly name: string;
  readonly ok: boolean;
  /** Where it was found, or the loader's error. */
  readonly detail: string;
  /** What to do when it is missing. */
  readonly fix?: string;
}

/** The preflight's verdict. */
export interface Preflight {
  readonly ok: boolean;
  readonly checks: readonly PreflightCheck[];
  /** One paragraph naming every missing piece (or "CUDA preflight passed: …"). */
  readonly message: string;
}

/** Where to get the provider libraries for this onnxruntime-node version (README "GPU"). */
export const PROVIDER_FIX = "install them for onnxruntime-node 1.30.0: `deno install " +
  "--allow-scripts=npm:onnxruntime-node` with network access (its install script downloads them; " +
  "ONNXRUNTIME_NODE_INSTALL=cuda12), or copy libonnxruntime_providers_{cuda,shared}.so from the NuGet " +
  "package Microsoft.ML.OnnxRuntime.Gpu.Linux 1.30.0 (runtimes/linux-x64/native/) next to libonnxruntime.so.1";

/** Try to open a shared library by name or path; returns the error message, or undefined on success. */
function tryOpen(name: string): string | undefined {
  try {
    const lib = Deno.dlopen(name, {});
    lib.close();
    return undefined;
  } catch (error) {
    return (error as Error).message.split("\n")[0]!.replace(/^(Could not open library: )+/, "");
  }
}

/** `nvidia-smi`'s GPU name and driver version, or why it could not run. */
function nvidiaSmi(): { ok: boolean; detail: string } {
  try {
    const out = new Deno.Command("nvidia-smi", {
      args: ["--query-gpu=name,driver_version", "--format=csv,noheader"],
      stdout: "piped",
      stderr: "piped",
    }).outputSync();
    const text = new TextDecoder().decode(out.success ? out.stdout : out.stderr).trim();
    return { ok: out.success && text.length > 0, detail: text || `exit code ${out.code}` };
  } catch (error) {
    return { ok: false, detail: (error as Error).message.split("\n")[0]! };
  }
}

/**
 * Check every piece the CUDA execution provider needs.
 * @param options.open override of the library probe (tests); returns an error message or undefined.
 * @param options.ortLibrary path of `libonnxruntime.so.1` (default: onnxruntime-node's).
 */
export function cudaPreflight(
  options: {
    readonly open?: (name: string) => string | undefined;
    readonly ortLibrary?: string;
    readonly smi?: () => { ok: boolean; detail: string };
  } = {},
): Preflight {
  const open = options.open ?? tryOpen;
  const checks: PreflightCheck[] = [];
  let ortDir: string | undefined;
  try {
    const lib = options.ortLibrary ?? findOrtLibrary();
    ortDir = lib.slice(0, lib.lastIndexOf("/"));
  } catch (error) {
    checks.push({
      name: "ONNX Runtime core (libonnxruntime.so.1 of onnxruntime-node)",
      ok: false,
      detail: (error as Error).message,
      fix: "run `deno install` in the project",
    });
  }
  if (ortDir !== undefined) {
    for (const file of ["libonnxruntime_providers_cuda.so", "libonnxruntime_providers_shared.so"]) {
      const path = `${ortDir}/${file}`;
      let found = false;
      try {
        found = Deno.statSync(path).isFile;
      } catch {
        // missing
      }
      checks.push({
        name: `provider library ${file}`,
        ok: found,
        detail: found ? path : `not found in ${ortDir}`,
        ...(found ? {} : { fix: PROVIDER_FIX }),
      });
    }
  }
  const libs: [string, string, string][] = [
    [
      "CUDA 13 runtime",
      "libcudart.so.13",
      "install the CUDA 13 runtime (cuda-cudart-13) and add its lib folder to LD_LIBRARY_PATH",
    ],
    [
      "cuBLAS (CUDA 13)",
      "libcublas.so.13",
      "install cuBLAS for CUDA 13 (libcublas-13) and add its lib folder to LD_LIBRARY_PATH",
    ],
    [
      "cuBLASLt (CUDA 13)",
      "libcublasLt.so.13",
      "install cuBLAS for CUDA 13 (libcublas-13) and add its lib folder to LD_LIBRARY_PATH",
    ],
    [
      "cuDNN 9",
      "libcudnn.so.9",
      "install cuDNN 9 for CUDA 13 (libcudnn9-cuda-13) and add its lib folder to LD_LIBRARY_PATH",
    ],
    [
      "NVIDIA driver",
      "libcuda.so.1",
      "install the NVIDIA driver (≥ 580 for CUDA 13); libcuda.so.1 comes with it",
    ],
  ];
  for (const [what, file, fix] of libs) {
    const error = open(file);
    checks.push({
      name: `${what} (${file})`,
      ok: error === undefined,
      detail: error ?? "loads",
      ...(error === undefined ? {} : { fix }),
    });
  }
  const smi = (options.smi ?? nvidiaSmi)();
  checks.push({
    name: "GPU visible to the driver (nvidia-smi)",
    ok: smi.ok,
    detail: smi.detail,
    ...(smi.ok
      ? {}
      : { fix: "check that the machine has an NVIDIA GPU and the driver is loaded (nvidia-smi)" }),
  });
  const missing = checks.filter((c) => !c.ok);
  const message = missing.length === 0
    ? `CUDA preflight passed: ${checks.map((c) => c.name).join(", ")}`
    : `CUDA is not usable here; missing: ${
      missing.map((c) => `${c.name} — ${c.detail}${c.fix ? ` (fix: ${c.fix})` : ""}`).join("; ")
    }. Run \`deno task doctor\` for the full report.`;
  return { ok: missing.length === 0, checks, message };
}

/** A printable report of {@link cudaPreflight}. */
export function formatPreflight(p: Preflight): string {
  const lines = ["CUDA preflight (deno task doctor)"];
  for (const c of p.checks) {
    lines.push(`  ${c.ok ? "ok     " : "MISSING"} ${c.name}: ${c.detail}`);
    if (!c.ok && c.fix) lines.push(`          fix: ${c.fix}`);
  }
  lines.push(
    p.ok ? "CUDA is usable: device cuda will work." : "CUDA is not usable: device auto uses the CPU.",
  );
  return lines.join("\n");
}

/** `deno task doctor`: its (empty) option table, which the parser uses, and its `--help`. */
export const DOCTOR_CLI = defineCli({
  command: "deno task doctor",
  summary: "Check that the CUDA execution provider can run on this machine. Names each missing piece " +
    "(provider libraries, CUDA 13 runtime and cuBLAS, cuDNN 9, the NVIDIA driver) and how to get it.",
  options: {},
  details: [
    "Libraries are found the way the dynamic loader finds them (LD_LIBRARY_PATH, the ldconfig cache). " +
    "Exit status: 0 CUDA is usable, 1 a piece is missing (device auto then uses the CPU), 2 bad usage.",
  ],
  environment: { LD_LIBRARY_PATH: "Extra folders searched for the CUDA, cuBLAS and cuDNN libraries." },
  examples: ["deno task doctor", "LD_LIBRARY_PATH=/opt/cuda/lib64 deno task doctor"],
});

/**
 * Run the preflight from a command line and print its report.
 *
 * @param args The options (only `--help`).
 * @param io Where the report and usage errors go.
 * @returns The exit status: 0 CUDA usable (or help printed), 1 not usable, 2 bad usage.
 */
export function main(args: readonly string[], io: CliIO = consoleIO): number {
  try {
    if (parseOrHelp(DOCTOR_CLI, args, io).help) return 0;
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.err(`doctor: ${e.message}`);
    return 2;
  }
  const p = cudaPreflight();
  io.out(formatPreflight(p));
  return p.ok ? 0 : 1;
}

if (import.meta.main) Deno.exit(main(Deno.args));
