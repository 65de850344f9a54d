/**
 * Tables: rows ↔ CSV (plain or Python-csv dialect), nodejs-polars DataFrames, Parquet; numbers as text.
 *
 * @module
 */

export * from "./table.ts";
export * from "./pyfloat.ts";
export * from "./format.ts";
