/**
 * Determinism helpers: a stable per-scenario seed and a small seeded PRNG. Nothing in the engine
 * may use Math.random: the same scenario must give byte-identical metrics on every run.
 */

const FNV_OFFSET_BASIS = 0x811c9dc5
const FNV_PRIME = 0x01000193

/** FNV-1a (32-bit) over the UTF-8 bytes of `text`. */
export const fnv1a32 = (text: string): number => {
  const bytes = new TextEncoder().encode(text)
  let hash = FNV_OFFSET_BASIS
  for (let i = 0; i < bytes.length; i++) {
    hash ^= bytes[i]
    hash = Math.imul(hash, FNV_PRIME)
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
