/** Small deterministic PRNG (mulberry32) and a string hash to derive per-symbol seeds. */
export const hashSeed = (...parts: ReadonlyArray<string | number>): number => {
  let h = 2166136261
  for (const ch of parts.join("\u0000")) {
    h ^= ch.codePointAt(0)!
    h = Math.imul(h, 16777619)
  }
  return h >>> 0
}

export class Rng {
  private state: number
  constructor(seed: number) {
    this.state = seed >>> 0
  }
  /** uniform in [0, 1) */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0)
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  /** standard normal (Box–Muller) */
  normal(): number {
    const u = Math.max(this.next(), 1e-12)
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next())
  }
  int(maxExclusive: number): number {
    return Math.floor(this.next() * maxExclusive)
  }
}
