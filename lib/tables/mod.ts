/**
 * Tables: rows ↔ CSV (plain or Python-csv dialect), nodejs-polars DataFrames, Parquet.
 *
 * @module
 */

export * from "./table.ts";
export * from "./pyfloat.ts";
