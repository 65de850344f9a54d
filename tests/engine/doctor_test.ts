/**
 * The CUDA preflight names exactly which piece is missing: provider libraries next to
 * libonnxruntime.so.1, the CUDA 13 runtime, cuBLAS, cuDNN 9, the driver; and `deno task doctor` on this
 * machine (no GPU) exits non-zero naming the provider library.
 */
import assert from "node:assert/strict";
import { cudaPreflight, formatPreflight } from "../../lib/engine/ort/doctor.ts";

const LIBS = ["libcudart.so.13", "libcublas.so.13", "libcublasLt.so.13", "libcudnn.so.9", "libcuda.so.1"];

async function withOrtDir(providers: string[], fn: (lib: string) => void): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "bt-doctor-" });
  try {
    await Deno.writeFile(`${dir}/libonnxruntime.so.1`, new Uint8Array(1));
    for (const p of providers) await Deno.writeFile(`${dir}/${p}`, new Uint8Array(1));
    fn(`${dir}/libonnxruntime.so.1`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("CUDA preflight: each missing piece is named, alone", async () => {
  const providers = ["libonnxruntime_providers_cuda.so", "libonnxruntime_providers_shared.so"];
  const smiOk = () => ({ ok: true, detail: "NVIDIA H100, 580.65" });
  // Everything present.
  await withOrtDir(providers, (lib) => {
    const p = cudaPreflight({ ortLibrary: lib, open: () => undefined, smi: smiOk });
    assert.ok(p.ok, p.message);
    assert.match(p.message, /^CUDA preflight passed/);
  });
  // One library missing at a time: exactly that one is reported.
  for (const missing of LIBS) {
    await withOrtDir(providers, (lib) => {
      const p = cudaPreflight({
        ortLibrary: lib,
        open: (name) => (name === missing ? `${name}: cannot open shared object file` : undefined),
        smi: smiOk,
      });
      assert.equal(p.ok, false);
      const bad = p.checks.filter((c) => !c.ok);
      assert.equal(bad.length, 1, `${missing}: ${p.message}`);
      assert.ok(bad[0]!.name.includes(missing), bad[0]!.name);
      assert.ok(p.message.includes(missing) && p.message.includes("fix:"), p.message);
    });
  }
  // The provider library missing next to libonnxruntime.so.1.
  await withOrtDir(["libonnxruntime_providers_shared.so"], (lib) => {
    const p = cudaPreflight({ ortLibrary: lib, open: () => undefined, smi: smiOk });
    const bad = p.checks.filter((c) => !c.ok).map((c) => c.name);
    assert.deepEqual(bad, ["provider library libonnxruntime_providers_cuda.so"]);
    assert.match(p.message, /Microsoft\.ML\.OnnxRuntime\.Gpu\.Linux 1\.30\.0/);
    assert.match(p.message, /--allow-scripts=npm:onnxruntime-node/);
  });
  // No GPU visible.
  await withOrtDir(providers, (lib) => {
    const p = cudaPreflight({
      ortLibrary: lib,
      open: () => undefined,
      smi: () => ({ ok: false, detail: "no" }),
    });
    assert.deepEqual(p.checks.filter((c) => !c.ok).map((c) => c.name), [
      "GPU visible to the driver (nvidia-smi)",
    ]);
  });
});

Deno.test("deno task doctor on this machine: the real probes report the missing provider library", async () => {
  const p = cudaPreflight();
  const report = formatPreflight(p);
  // onnxruntime-node from npm has no CUDA provider; a machine that has one installed passes this check.
  const provider = p.checks.find((c) => c.name.includes("libonnxruntime_providers_cuda.so"))!;
  assert.ok(provider, report);
  if (!provider.ok) assert.match(report, /MISSING provider library libonnxruntime_providers_cuda\.so/);
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../../lib/engine/ort/doctor.ts", import.meta.url).pathname],
    stdout: "piped",
  }).output();
  assert.equal(out.success, p.ok, "exit code follows the verdict");
  assert.match(new TextDecoder().decode(out.stdout), /CUDA preflight \(deno task doctor\)/);
});
