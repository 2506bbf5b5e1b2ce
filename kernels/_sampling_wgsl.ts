/**
 * WGSL template of the sampling kernel (`sampling.ts` holds the launcher and the design): one
 * workgroup per row of logits, max → top-k bisection → top-p bisection → inverse-CDF draw.
 *
 * @module
 */

import {
  combine,
  SG_ENABLE,
  SG_STATE,
  type SubgroupOp,
  subgroupReducer,
} from "./_reduce_variant.ts";

/** Elements per loop iteration: llvmpipe ends any invocation's loops after 65535 iterations in
 * total, so each pass over a row must take few iterations. */
export const UNROLL = 8;
/** WGSL literal of "no index". */
const NONE = "0xffffffffu";

/** WGSL: `body` (which sees the element index `j`) over j = lid, lid + WG, … < n, unrolled. */
function strided(body: string, wg: number): string {
  const steps = Array.from(
    { length: UNROLL },
    (_, u) => `{ let j = i + ${u * wg}u; if (j < n) { ${body} } }`,
  );
  return `for (var i = lid; i < n; i += ${wg * UNROLL}u) {\n      ${steps.join("\n      ")}\n    }`;
}

/** WGSL: `body` over j = lo … hi − 1 in order, unrolled; leaves early once `until` holds. */
function blocked(body: string, until?: string): string {
  const steps = Array.from(
    { length: UNROLL },
    (_, u) => `{ let j = i + ${u}u; if (j < hi) { ${body.replaceAll("NONE_ID", NONE)} } }`,
  );
  const exit = until ? `\n      if (${until.replaceAll("NONE_ID", NONE)}) { break; }` : "";
  return `for (var i = lo; i < hi; i += ${UNROLL}u) {\n      ${
    steps.join("\n      ")
  }${exit}\n    }`;
}

/**
 * WGSL: a workgroup reduction of one u32/f32 per invocation, result uniform — a tree
 * (`reg`), or subgroup reductions whose result invocation 0 hands out through
 * `workgroupUniformLoad` (`sg`).
 */
function reducer(
  name: string,
  type: "u32" | "f32",
  op: SubgroupOp,
  c: SampleConstants,
): string {
  const buf = type === "u32" ? "red_u" : "red_f";
  const wg = c.wg;
  if (c.sg === 1) {
    return `${subgroupReducer({ name: `${name}_sg`, type, op, buf, wg })}
fn ${name}(lid: u32, v: ${type}) -> ${type} {
  let r = ${name}_sg(lid, v);
  if (lid == 0u) { ${buf}_out = r; }
  return workgroupUniformLoad(&${buf}_out);
}`;
  }
  return `
fn ${name}(lid: u32, v: ${type}) -> ${type} {
  ${buf}[lid] = v;
  workgroupBarrier();
  for (var off = ${wg / 2}u; off > 0u; off >>= 1u) {
    if (lid < off) { ${buf}[lid] = ${combine(op, `${buf}[lid]`, `${buf}[lid + off]`)}; }
    workgroupBarrier();
  }
  let r = workgroupUniformLoad(&${buf}[0]);
  workgroupBarrier();
  return r;
}`;
}

/** Specialisation constants of the sampling kernel. */
export interface SampleConstants extends Record<string, number> {
  /** Invocations per workgroup (a power of two ≥ 2). */
  wg: number;
  /** Elements per loop iteration. */
  unroll: number;
}

/** The four reductions of the sampling kernel. */
function reducers(c: SampleConstants): string {
  const sg = c.sg === 1;
  return `${sg ? `${SG_STATE}\nvar<workgroup> red_u_out: u32;\nvar<workgroup> red_f_out: f32;` : ""}
${reducer("reduce_max_u", "u32", "max", c)}
${reducer("reduce_min_u", "u32", "min", c)}
${reducer("reduce_sum_u", "u32", "add", c)}
${reducer("reduce_sum_f", "f32", "add", c)}`;
}

/**
 * WGSL of the sampling kernel. With the extra constant `logprobs: 1` (absent = off: the source
 * and pipeline key of the plain kernel) it also writes, beside each id, the temperature-1
 * log-softmax of the row at that id, `z_id − (max + log Σ exp(z − max))`, into binding 3:
 * one more pass over the row (the one below the max). With `sg: 1` (the `sg` variant) the
 * reductions run on subgroup operations.
 *
 * @param c Workgroup size and unroll (and `logprobs`, `sg`).
 * @returns The WGSL source.
 */
export const sampleSource = (c: SampleConstants): string => {
  const lp = c.logprobs === 1;
  const binding = lp
    ? "\n@group(0) @binding(3) var<storage, read_write> logp: array<f32>; // [out_offset + B]"
    : "";
  // subtle: in uniform control flow (the reduction has barriers), before the greedy branch.
  const lse = lp
    ? `
  var se = 0.0;
  let zmax = key_value(kmax);
  ${strided("se += exp(bitcast<f32>(logits[base + j]) - zmax);", c.wg)}
  let lse = zmax + log(reduce_sum_f(lid, se));`
    : "";
  const write = lp
    ? "\n    logp[p.out_offset + p.row_start + wid.x] = bitcast<f32>(logits[base + chosen]) - lse;"
    : "";
  return /* wgsl */ `${c.sg === 1 ? SG_ENABLE : ""}
struct Params {
  vocab: u32, row_start: u32, out_offset: u32, top_k: u32,
  inv_temp: f32, top_p: f32, seed: u32, step: u32, greedy: u32,
}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<u32>;    // [rows, V] f32 bits, this part
@group(0) @binding(2) var<storage, read_write> out: array<u32>; // [out_offset + B] token ids${binding}

var<workgroup> red_u: array<u32, ${c.wg}>;
var<workgroup> red_f: array<f32, ${c.wg}>;
var<workgroup> prefix: array<f32, ${c.wg}>;
var<workgroup> block_last: array<u32, ${c.wg}>;
var<workgroup> total: f32;
var<workgroup> picked: u32;

${reducers(c)}

// PCG output permutation; mirrored by samplingUniform() in sampling_ref.ts.
fn pcg(v: u32) -> u32 {
  let state = v * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}

// IEEE total order as u32 order; NaN ranks as -inf (mirrored by orderedKey()).
fn key_at(i: u32) -> u32 {
  let b = logits[i];
  if ((b & 0x7fffffffu) > 0x7f800000u) { return 0x007fffffu; }
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

fn key_value(k: u32) -> f32 {
  return bitcast<f32>(select(~k, k & 0x7fffffffu, k >= 0x80000000u));
}

fn weight(k: u32, lmax: f32) -> f32 {
  return exp((key_value(k) - lmax) * p.inv_temp);
}

@compute @workgroup_size(${c.wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {${
    c.sg === 1 ? "\n  sg_init();" : ""
  }
  let n = p.vocab;
  let base = wid.x * n;
  var km = 0u;
  ${strided("km = max(km, key_at(base + j));", c.wg)}
  let kmax = reduce_max_u(lid, km);${lse}
  var chosen = 0u;
  if (p.greedy != 0u) {
    var first = ${NONE};
    ${strided("if (key_at(base + j) == kmax) { first = min(first, j); }", c.wg)}
    chosen = reduce_min_u(lid, first);
  } else {
    var tk = 0u;
    if (p.top_k > 0u && p.top_k < n) {
      // Largest key with at least k keys ≥ it: the k-th largest key.
      for (var b = 0u; b < 32u; b++) {
        let cand = tk | (0x80000000u >> b);
        var c = 0u;
        ${strided("c += select(0u, 1u, key_at(base + j) >= cand);", c.wg)}
        if (reduce_sum_u(lid, c) >= p.top_k) { tk = cand; }
      }
    }
    let lmax = key_value(kmax);
    var tp = tk;
    if (p.top_p < 1.0) {
      var s = 0.0;
      ${strided("let k = key_at(base + j); if (k >= tk) { s += weight(k, lmax); }", c.wg)}
      let need = p.top_p * reduce_sum_f(lid, s);
      // subtle: candidates below tk evaluate the same mass as tk itself (the same sums in the
      // same order), so the predicate holds at tk and the result is never below it.
      // The answer lies in [tk, kmax]: the bits above their highest differing bit are fixed.
      let nbits = select(firstLeadingBit(tk ^ kmax) + 1u, 0u, tk == kmax);
      var t = select(kmax & ~((1u << (nbits & 31u)) - 1u), 0u, nbits == 32u);
      for (var q = 0u; q < nbits; q++) {
        let bit = 1u << (nbits - 1u - q);
        let cand = max(t | bit, tk);
        var m = 0.0;
        ${strided("let k = key_at(base + j); if (k >= cand) { m += weight(k, lmax); }", c.wg)}
        if (reduce_sum_f(lid, m) >= need) { t = t | bit; }
      }
      tp = max(t, tk);
    }
    // Inverse CDF in index order over contiguous blocks.
    let per = (n + ${c.wg - 1}u) / ${c.wg}u;
    let lo = min(lid * per, n);
    let hi = min(lo + per, n);
    var bs = 0.0;
    var last = ${NONE};
    ${
    blocked(
      "let k = key_at(base + j); if (k >= tp) { let w = weight(k, lmax); bs += w; " +
        "if (w > 0.0) { last = j; } }",
    )
  }
    red_f[lid] = bs;
    block_last[lid] = last;
    workgroupBarrier();
    if (lid == 0u) {
      var acc = 0.0;
      var last_all = ${NONE};
      // subtle: a runtime bound, so LLVM does not unroll this loop (slow llvmpipe compiles).
      for (var q = 0u; q < min(${c.wg}u, n + ${c.wg}u); q++) {
        prefix[q] = acc;
        acc += red_f[q];
        if (block_last[q] != ${NONE}) { last_all = block_last[q]; }
      }
      total = acc;
      picked = last_all; // fallback when rounding puts the goal at the very end
    }
    workgroupBarrier();
    let u = f32(pcg(pcg(pcg(p.seed) + p.step) + p.row_start + wid.x) >> 8u) * (1.0 / 16777216.0);
    let goal = u * total;
    let pre = prefix[lid];
    // subtle: pre + bs is the same f32 add invocation 0 made, so the intervals tile [0, total).
    if (pre <= goal && goal < pre + bs) {
      var r = 0.0;
      var found = ${NONE};
      ${
    blocked(
      "if (found == NONE_ID) { let k = key_at(base + j); if (k >= tp) { " +
        "r += weight(k, lmax); if (pre + r > goal) { found = j; } } }",
      "found != NONE_ID",
    )
  }
      if (found != ${NONE}) { picked = found; }
    }
    chosen = workgroupUniformLoad(&picked);
  }
  if (lid == 0u) { out[p.out_offset + p.row_start + wid.x] = chosen;${write} }
}`;
};
