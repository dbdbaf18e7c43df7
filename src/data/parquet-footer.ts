/**
 * Parquet footers from the file tail alone: what coverage, row-group selection and import
 * headers need, without decoding a data page (hyparquet's metadata parser).
 */
import { promises as fs } from "node:fs"
import { parquetMetadata, type FileMetaData } from "hyparquet"
import { ParquetReadError } from "./errors.js"

/** Timestamps and 64-bit statistics stay raw bigints: hyparquet's default makes Date(ms) and drops ns. */
export const RAW_PARSERS = {
  timestampFromMilliseconds: (v: bigint) => v,
  timestampFromMicroseconds: (v: bigint) => v,
  timestampFromNanoseconds: (v: bigint) => v,
  dateFromDays: (d: number) => d
}

/** Counts footer parses, so tests can prove a cached coverage rebuild read none. */
export const footerCounters = { reads: 0 }

const TAIL_BYTES = 64 * 1024

const readRange = async (handle: fs.FileHandle, start: number, length: number): Promise<Uint8Array> => {
  const buf = new Uint8Array(length)
  let done = 0
  while (done < length) {
    const { bytesRead } = await handle.read(buf, done, length - done, start + done)
    if (bytesRead === 0) break
    done += bytesRead
  }
  return done === length ? buf : buf.subarray(0, done)
}

/** Parses a file's footer from its tail alone (one read, two when the footer exceeds 64 KiB). */
export const readFooterMetadata = async (file: string): Promise<{ metadata: FileMetaData; size: number }> => {
  let handle: fs.FileHandle
  try {
    handle = await fs.open(file, "r")
  } catch (e) {
    throw new ParquetReadError({ file, reason: (e as Error).message })
  }
  try {
    const { size } = await handle.stat()
    if (size < 12) throw new ParquetReadError({ file, reason: `only ${size} bytes, too short for a Parquet file` })
    let tail = await readRange(handle, Math.max(0, size - TAIL_BYTES), Math.min(size, TAIL_BYTES))
    const view = new DataView(tail.buffer, tail.byteOffset, tail.byteLength)
    if (view.getUint32(tail.byteLength - 4, true) !== 0x31524150) {
      throw new ParquetReadError({
        file,
        reason: `the file does not end with the PAR1 magic bytes (${size} bytes; truncated, still being written, or not Parquet)`
      })
    }
    const footerLength = view.getUint32(tail.byteLength - 8, true)
    if (footerLength + 8 > size - 4) {
      throw new ParquetReadError({ file, reason: `footer length ${footerLength} exceeds the file size ${size} (corrupted footer)` })
    }
    if (footerLength + 8 > tail.byteLength) tail = await readRange(handle, size - footerLength - 8, footerLength + 8)
    footerCounters.reads++
    try {
      return { metadata: parquetMetadata(tail, { parsers: RAW_PARSERS, geoparquet: false }), size }
    } catch (e) {
      throw new ParquetReadError({ file, reason: `corrupted footer: ${(e as Error).message}` })
    }
  } finally {
    await handle.close()
  }
}
