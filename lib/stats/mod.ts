/**
 * Statistics: bootstrap intervals (clustered), paired tests, seeded RNG helpers.
 *
 * @module
 */

export * from "./stats.ts";
