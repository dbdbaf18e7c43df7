/**
 * Reading Parquet files into price columns, in three parts:
 * - parquet-footer.ts: footers from the file tail (hyparquet), no data page decoded;
 * - parquet-schema.ts: which columns are time and prices, time encodings, row-group statistics;
 * - parquet-decode.ts: data pages of chosen row groups into doubles (parquet-wasm or hyparquet).
 */
export * from "./parquet-footer.js"
export * from "./parquet-schema.js"
export * from "./parquet-decode.js"
