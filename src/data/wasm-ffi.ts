/**
 * Reading parquet-wasm's Arrow output straight out of WebAssembly memory through the Arrow C
 * Data Interface, instead of serialising it to an IPC stream and parsing that back (the IPC
 * round trip cost as much as decoding the Parquet pages in bench/load.ts). Only flat record
 * batches of primitive columns are handled; anything else returns null and the caller uses IPC.
 *
 * wasm32 layout of the C structs (pointers are 4 bytes, int64 fields 8-byte aligned):
 *   ArrowSchema { format@0, name@4, metadata@8, flags@16, n_children@24, children@32, dictionary@36, release@40, private@44 }
 *   ArrowArray  { length@0, null_count@8, offset@16, n_buffers@24, n_children@32, buffers@40, children@44, dictionary@48, release@52, private@56 }
 */
import { readParquet, wasmMemory, type ReaderOptions } from "parquet-wasm"

export interface FfiColumn {
  readonly name: string
  /** Arrow C format string: "l" int64, "g" double, "i" int32, "tsn:UTC" timestamp ns, "b" bool, ... */
  readonly format: string
  /** one entry per record batch */
  readonly chunks: Array<{ length: number; offset: number; nullCount: number; validityPtr: number; dataPtr: number }>
}

const cString = (bytes: Uint8Array, ptr: number): string => {
  if (ptr === 0) return ""
  let end = ptr
  while (bytes[end] !== 0) end++
  return new TextDecoder().decode(bytes.subarray(ptr, end))
}

/**
 * Decodes with parquet-wasm and hands each column's buffers to `consume` while they are still
 * in wasm memory (views die when the stream is freed, so consume must copy).
 * Returns false when the layout is not a flat batch of primitives.
 */
export const readParquetViaFfi = (
  bytes: Uint8Array,
  options: ReaderOptions,
  consume: (columns: ReadonlyArray<FfiColumn>, memory: ArrayBuffer) => void
): boolean => {
  const table = readParquet(bytes, options)
  const stream = table.intoFFI()
  try {
    const memory = wasmMemory().buffer
    const view = new DataView(memory)
    const u8 = new Uint8Array(memory)
    const u32 = (p: number) => view.getUint32(p, true)
    const i64 = (p: number) => Number(view.getBigInt64(p, true))
    const schemaPtr = stream.schemaAddr()
    if (cString(u8, u32(schemaPtr)) !== "+s") return false
    const nColumns = i64(schemaPtr + 24)
    const childSchemas = u32(schemaPtr + 32)
    const columns: FfiColumn[] = []
    for (let c = 0; c < nColumns; c++) {
      const s = u32(childSchemas + 4 * c)
      if (i64(s + 24) !== 0 || u32(s + 36) !== 0) return false // nested or dictionary
      columns.push({ name: cString(u8, u32(s + 4)), format: cString(u8, u32(s)), chunks: [] })
    }
    const nBatches = stream.numArrays()
    for (let b = 0; b < nBatches; b++) {
      const arr = stream.arrayAddr(b)
      if (i64(arr + 32) !== nColumns || i64(arr + 16) !== 0) return false
      const children = u32(arr + 44)
      for (let c = 0; c < nColumns; c++) {
        const child = u32(children + 4 * c)
        if (i64(child + 24) !== 2) return false // primitive: validity + data
        const buffers = u32(child + 40)
        columns[c].chunks.push({
          length: i64(child),
          nullCount: i64(child + 8),
          offset: i64(child + 16),
          validityPtr: u32(buffers),
          dataPtr: u32(buffers + 4)
        })
      }
    }
    consume(columns, memory)
    return true
  } finally {
    stream.free()
  }
}
