/** Messages on the pipeline stream `TF_PIPELINE`: submissions and scenario groups. */
import { z } from "zod"
import { Freq, IsoDate, WIRE_VERSION } from "./common.js"
import { Id, Scenario } from "./batch.js"

/** `tf.submit`: a whole batch config, or one scenario (a foreign client's JSON; `kind` optional). */
export const SubmitBatch = z.object({
  v: z.literal(WIRE_VERSION).default(WIRE_VERSION),
  kind: z.literal("batch"),
  batch_id: Id.optional(),
  /** validated by the coordinator with the batch-config schema, so errors name config paths */
  config: z.unknown(),
  /** directory that relative paths in the config (universe files) are resolved against */
  base_dir: z.string().optional()
})
export const SubmitScenario = Scenario.extend({
  kind: z.literal("scenario").default("scenario"),
  batch_id: Id.optional(),
  scenario_id: Id.optional()
})
export const SubmitMessage = z.preprocess(
  (raw) => (raw && typeof raw === "object" && !("kind" in raw) ? { ...raw, kind: "scenario" } : raw),
  z.discriminatedUnion("kind", [SubmitBatch, SubmitScenario])
)
export type SubmitMessage = z.infer<typeof SubmitMessage>

/** The data slice a group shares. */
export const SliceSpec = z.object({
  universe: z.array(z.string()).min(1),
  freq: Freq,
  start_date: IsoDate,
  end_date: IsoDate,
  data_root: z.string().optional(),
  /** the most warmup any scenario of the group needs (set by requirements) */
  warmup_bars: z.number().int().min(0).default(0)
})
export type SliceSpec = z.infer<typeof SliceSpec>

/** One scenario inside a group, with what the phases learnt about it. */
export const GroupItem = z.object({
  scenario: Scenario,
  /** parameters after defaults/clamping (requirements) */
  params: z.record(z.string(), z.unknown()).optional(),
  warmup_bars: z.number().int().min(0).optional(),
  warnings: z.array(z.string()).default([])
})
export type GroupItem = z.infer<typeof GroupItem>

/** A loaded slice in the object store `tf_data`, one per symbol. */
export const SliceRef = z.object({
  symbol: z.string(),
  key: z.string(),
  rows: z.number().int(),
  warmup_rows: z.number().int(),
  resampled_from_ticks: z.boolean(),
  bytes: z.number().int()
})
export type SliceRef = z.infer<typeof SliceRef>

/** `tf.scn.<stage>.<batch>`: scenarios that share a data slice travel together. */
export const GroupMessage = z.object({
  v: z.literal(WIRE_VERSION),
  batch_id: Id,
  group_id: Id,
  slice: SliceSpec,
  items: z.array(GroupItem).min(1),
  data_version: z.string().optional(),
  slices: z.array(SliceRef).optional(),
  /** quality findings (warnings) carried to the results */
  findings: z.array(z.string()).default([])
})
export type GroupMessage = z.infer<typeof GroupMessage>

export const STAGES = ["avail", "reqs", "load", "quality", "exec"] as const
export type Stage = (typeof STAGES)[number]
