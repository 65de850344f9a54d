/**
 * Helpers shared by the hub tests: a clean HF_* environment, temp folders, content hashes.
 * @module
 */

import { rm } from "node:fs/promises";

/** The environment variables the hub code reads. */
export const HF_VARS = ["HF_HUB_CACHE", "HF_HOME", "HF_TOKEN", "HF_HUB_OFFLINE", "HF_ENDPOINT"] as const;

/** Run `fn` with the HF_* variables unset except those given, then restore them. */
export async function withEnv(
  vars: Partial<Record<typeof HF_VARS[number], string>>,
  fn: () => void | Promise<void>,
): Promise<void> {
  const saved = new Map(HF_VARS.map((k) => [k, Deno.env.get(k)]));
  for (const k of HF_VARS) {
    const v = vars[k];
    if (v === undefined) Deno.env.delete(k);
    else Deno.env.set(k, v);
  }
  try {
    await fn();
  } finally {
    for (const [k, v] of saved) {
      if (v === undefined) Deno.env.delete(k);
      else Deno.env.set(k, v);
    }
  }
}

/** Run `fn` in a fresh temp folder, removed afterwards. */
export async function withTempDir(fn: (dir: string) => Promise<void>, prefix = "hub_test_"): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix });
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Hex digest of `data`. */
export async function hex(algo: "SHA-1" | "SHA-256", data: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest(algo, data));
  return [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** A JSON response as the hub API sends it. */
export function jsonResponse(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

/** URL, method and headers of a `fetch` call, whatever form its input took. */
export function requestOf(
  input: string | URL | globalThis.Request,
  init?: RequestInit,
): { url: URL; method: string; headers: Headers } {
  const url = new URL(typeof input === "string" ? input : input instanceof URL ? input.href : input.url);
  return { url, method: init?.method ?? "GET", headers: new Headers(init?.headers) };
}

/** The hub's answer to `/api/{models,datasets}/<repo>/revision/<rev>`. */
export function revisionInfo(repo: string, sha: string): Record<string, unknown> {
  return {
    _id: "abc",
    id: repo,
    sha,
    private: false,
    gated: false,
    downloads: 0,
    likes: 0,
    lastModified: "2025-01-01T00:00:00.000Z",
  };
}
