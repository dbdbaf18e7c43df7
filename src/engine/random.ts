/**
 * Determinism helpers: a stable per-scenario seed and a small seeded PRNG. Nothing in the engine
 * may use Math.random: the same scenario must give byte-identical metrics on every run.
 */

const FNV_OFFSET_BASIS = 0x811c9dc5
const FNV_PRIME = 0x01000193

/**
 * FNV-1a (32-bit) over the UTF-8 bytes of `text` (a lone surrogate counts as U+FFFD, as
 * TextEncoder writes it). The bytes are walked in place: a TextEncoder per call cost an
 * executor ~2% of its CPU, twice a scenario (seed and result key).
 */
export const fnv1a32 = (text: string): number => {
  let hash = FNV_OFFSET_BASIS
  const add = (byte: number) => {
    hash ^= byte
    hash = Math.imul(hash, FNV_PRIME)
  }
  for (let i = 0; i < text.length; i++) {
    let c = text.charCodeAt(i)
    if (c < 0x80) {
      add(c)
      continue
    }
    if (c < 0x800) {
      add(0xc0 | (c >> 6))
      add(0x80 | (c & 0x3f))
      continue
    }
    if (c >= 0xd800 && c <= 0xdfff) {
      const next = i + 1 < text.length ? text.charCodeAt(i + 1) : 0
      if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        const cp = 0x10000 + ((c - 0xd800) << 10) + (next - 0xdc00)
        i++
        add(0xf0 | (cp >> 18))
        add(0x80 | ((cp >> 12) & 0x3f))
        add(0x80 | ((cp >> 6) & 0x3f))
        add(0x80 | (cp & 0x3f))
        continue
      }
      c = 0xfffd
    }
    add(0xe0 | (c >> 12))
    add(0x80 | ((c >> 6) & 0x3f))
    add(0x80 | (c & 0x3f))
  }
  return hash >>> 0
}

/** The seed of one scenario of a batch: a stable 32-bit hash of `${batchSeed}:${scenarioId}`. */
export const scenarioSeed = (batchSeed: number, scenarioId: string): number => fnv1a32(`${batchSeed}:${scenarioId}`)

/** mulberry32: a tiny, fast, well-mixed 32-bit PRNG. Returns uniform numbers in [0, 1). */
export const mulberry32 = (seed: number): (() => number) => {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
