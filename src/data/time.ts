/**
 * Time helpers of the data plane: exact int64 → epoch-ms conversion, UTC day numbers and
 * wall-clock-in-a-time-zone → UTC via Intl (no time-zone dependency).
 */

export type TimeUnit = "s" | "ms" | "us" | "ns"

/** How many units of each kind make one millisecond (s: 1/1000). */
export const UNITS_PER_MS: Record<TimeUnit, number> = { s: 0.001, ms: 1, us: 1_000, ns: 1_000_000 }
export const NS_PER_MS = 1_000_000n
export const MS_PER_DAY = 86_400_000

/**
 * Converts int64 timestamps to epoch milliseconds as doubles, correctly rounded: the integer
 * millisecond part is exact and only the sub-millisecond fraction is rounded (a double near
 * 1.7e12 ms keeps ~0.25 µs). Works on the two 32-bit halves of each value, because going
 * through BigInt per value is ~20× slower and Number(bigint) of nanoseconds loses ~256 ns.
 */
export const int64ToEpochMs = (values: BigInt64Array, unit: TimeUnit, out?: Float64Array, outOffset = 0): Float64Array => {
  const n = values.length
  const result = out ?? new Float64Array(n)
  const words = new Int32Array(values.buffer, values.byteOffset, n * 2)
  if (unit === "ms" || unit === "s") {
    const scale = unit === "s" ? 1000 : 1
    for (let i = 0; i < n; i++) {
      const lo = words[2 * i] >>> 0
      const hi = words[2 * i + 1]
      result[outOffset + i] = (hi * 4294967296 + lo) * scale
    }
    return result
  }
  // value = hi·2^32 + lo and 2^32 = Q·D + R, so value/D = hi·Q + (hi·R + lo)/D with hi·R + lo < 2^53.
  const divisor = unit === "ns" ? 1_000_000 : 1_000
  const q = Math.floor(4294967296 / divisor)
  const r = 4294967296 - q * divisor
  for (let i = 0; i < n; i++) {
    const lo = words[2 * i] >>> 0
    const hi = words[2 * i + 1]
    const rest = hi * r + lo
    const restMs = Math.floor(rest / divisor)
    result[outOffset + i] = hi * q + restMs + (rest - restMs * divisor) / divisor
  }
  return result
}

/** Exact conversion of one int64 timestamp (any unit) to epoch ms as a double. */
export const bigintToEpochMs = (value: bigint, unit: TimeUnit): number => {
  if (unit === "ms") return Number(value)
  if (unit === "s") return Number(value) * 1000
  const divisor = unit === "ns" ? NS_PER_MS : 1000n
  let whole = value / divisor
  let rest = value % divisor
  if (rest < 0n) {
    whole -= 1n
    rest += divisor
  }
  return Number(whole) + Number(rest) / Number(divisor)
}

/** Epoch ms (possibly fractional) → int64 ns, exact for whole microseconds. */
export const epochMsToNs = (ms: number): bigint => {
  const whole = Math.floor(ms)
  const fracNs = Math.round((ms - whole) * 1_000_000)
  return BigInt(whole) * NS_PER_MS + BigInt(fracNs)
}

/** UTC day number (days since 1970-01-01) of an epoch-ms instant. */
export const utcDay = (ms: number): number => Math.floor(ms / MS_PER_DAY)
export const dayToIso = (day: number): string => new Date(day * MS_PER_DAY).toISOString().slice(0, 10)
export const isoToDay = (iso: string): number => Math.floor(Date.parse(`${iso}T00:00:00Z`) / MS_PER_DAY)

/**
 * ISO-8601 UTC; sub-millisecond digits are kept to the microsecond, the precision an epoch-ms
 * double still holds near the present (~0.24 µs), so no made-up nanosecond digits are shown.
 */
export const msToIso = (ms: number): string => {
  let whole = Math.floor(ms)
  let fracUs = Math.round((ms - whole) * 1000)
  if (fracUs === 1000) {
    whole += 1
    fracUs = 0
  }
  const iso = new Date(whole).toISOString()
  if (fracUs === 0) return iso
  return `${iso.slice(0, 23)}${String(fracUs).padStart(3, "0").replace(/0+$/, "")}Z`
}

/** 0 = Sunday … 6 = Saturday for a UTC day number (1970-01-01 was a Thursday). */
export const weekdayOfDay = (day: number): number => (((day + 4) % 7) + 7) % 7
export const isWeekday = (day: number): boolean => {
  const w = weekdayOfDay(day)
  return w !== 0 && w !== 6
}

/** Weekdays strictly between two UTC day numbers: the trading days a gap skipped (holidays aside). */
export const weekdaysBetween = (fromDay: number, toDay: number): number => {
  let count = 0
  for (let d = fromDay + 1; d < toDay; d++) if (isWeekday(d)) count++
  return count
}

const formatterCache = new Map<string, Intl.DateTimeFormat>()
const zoneFormatter = (timeZone: string): Intl.DateTimeFormat => {
  let f = formatterCache.get(timeZone)
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone,
      hourCycle: "h23",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit"
    })
    formatterCache.set(timeZone, f)
  }
  return f
}

/** True when Intl knows the IANA zone name. */
export const isValidTimeZone = (timeZone: string): boolean => {
  try {
    zoneFormatter(timeZone)
    return true
  } catch {
    return false
  }
}

/** Offset (ms) of a zone from UTC at an instant: local = utc + offset. */
export const zoneOffsetMs = (timeZone: string, utcMs: number): number => {
  if (timeZone === "UTC" || timeZone === "Etc/UTC") return 0
  const parts = zoneFormatter(timeZone).formatToParts(new Date(utcMs))
  const get = (type: string) => Number(parts.find((p) => p.type === type)?.value)
  const asUtc = Date.UTC(get("year"), get("month") - 1, get("day"), get("hour"), get("minute"), get("second"))
  return asUtc - Math.floor(utcMs / 1000) * 1000
}

/**
 * UTC epoch ms of a wall-clock time (given as if it were UTC) in a zone. Two passes settle
 * DST edges; a wall time inside a spring-forward hole resolves to the later offset, and one
 * inside a fall-back overlap to the earlier instant (the first occurrence), as most brokers log.
 */
export const wallClockToUtcMs = (wallMsAsUtc: number, timeZone: string): number => {
  if (timeZone === "UTC" || timeZone === "Etc/UTC") return wallMsAsUtc
  const first = zoneOffsetMs(timeZone, wallMsAsUtc)
  let utc = wallMsAsUtc - first
  const second = zoneOffsetMs(timeZone, utc)
  if (second !== first) {
    const candidate = wallMsAsUtc - second
    if (zoneOffsetMs(timeZone, candidate) === second) utc = candidate
  }
  // overlap: prefer the earlier instant if it maps to the same wall time
  const earlier = utc - 3_600_000
  if (zoneOffsetMs(timeZone, earlier) + earlier === wallMsAsUtc) return earlier
  return utc
}
