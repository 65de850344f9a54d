/**
 * Generation: sampling, per-sample RNG streams, batched generation, append-only record stores with
 * resume, shards (partition, plan, merge).
 *
 * @module
 */

export * from "./generate.ts";
export * from "./records.ts";
export * from "./rng.ts";
export * from "./run_generation.ts";
export * from "./sampling.ts";
export * from "./shards.ts";
