/**
 * Known peaks of real GPUs, so benches and the device check can say how much of the hardware a
 * kernel uses: f32 FLOP/s on the ordinary (non-tensor-core) ALUs and memory bandwidth, each
 * with its source.
 *
 * {@linkcode findPeak} matches what WebGPU tells about an adapter. Deno (wgpu) gives the
 * driver's device name as `description` ("NVIDIA H100 80GB HBM3") and PCI ids in decimal as
 * `vendor`/`device` ("4318" is NVIDIA's 0x10de); browsers often give only a vendor and an
 * architecture ("nvidia", "hopper"). A name is matched against the table; without one, a
 * vendor and architecture that single out one entry are; anything that fits several entries
 * (an H100 or an H200?) gets no peak.
 *
 * Numbers: vendor spec sheets or whitepapers where they state the figure; otherwise derived as
 * ALUs × 2 (FMA) × boost clock from the vendor's core count and clock (`derived` says so; for
 * Apple's M3/M4, whose clocks Apple does not publish, the clock comes from public
 * measurements). Where one name covers several configurations (binned Apple chips, 8/16 GB
 * cards), the entry holds the largest, so a % of peak is a lower bound there (`note`). AMD's
 * RDNA 3 figures count dual-issue FP32, as AMD's spec pages do.
 *
 * @module
 */

/** Vendors in the table. */
export type PeakVendor = "nvidia" | "apple" | "amd" | "intel";

/** The peaks of one GPU model. */
export interface AdapterPeak {
  /** Marketing name, e.g. `NVIDIA H100 SXM5 80GB`. */
  readonly name: string;
  /** Vendor. */
  readonly vendor: PeakVendor;
  /** Architecture as Chromium reports it (`hopper`, `ampere`, `rdna-3`), or empty. */
  readonly architecture: string;
  /** f32 FLOP/s of the ordinary ALUs (FMA = 2 FLOPs; no tensor cores, no sparsity). */
  readonly f32Flops: number;
  /** Memory bandwidth in bytes/s. */
  readonly memoryBandwidth: number;
  /** Where the numbers come from (document and URL, or the derivation). */
  readonly source: string;
  /** True when the FLOP/s is derived from cores × clock rather than stated by the vendor. */
  readonly derived: boolean;
  /** Caveat, e.g. "largest configuration: % of peak is a lower bound". */
  readonly note?: string;
}

/** What an adapter says about itself (`GPUAdapterInfo`, or `Gpu.adapter`). */
export interface AdapterIdentity {
  /** Vendor name or PCI id (Deno: decimal, e.g. `4318`). */
  readonly vendor?: string;
  /** Architecture (browsers: e.g. `hopper`; Deno: empty). */
  readonly architecture?: string;
  /** Device name or PCI id. */
  readonly device?: string;
  /** Driver's device name, e.g. `NVIDIA GeForce RTX 4090`. */
  readonly description?: string;
}

/** One table row: the peaks and the pattern its adapter names match (normalized text). */
interface PeakEntry extends AdapterPeak {
  readonly match: RegExp;
}

/** PCI vendor ids (decimal, as Deno reports them) and names of the table's vendors. */
const VENDOR_IDS: Readonly<Record<string, PeakVendor>> = {
  "4318": "nvidia", // 0x10de
  "0x10de": "nvidia",
  "nvidia": "nvidia",
  "4098": "amd", // 0x1002
  "0x1002": "amd",
  "amd": "amd",
  "ati": "amd",
  "32902": "intel", // 0x8086
  "0x8086": "intel",
  "intel": "intel",
  "4203": "apple", // 0x106b
  "0x106b": "apple",
  "apple": "apple",
};

/** The model name `name` (normalized words), not followed by one of `next` (`Ti`, `Laptop`…). */
function model(name: string, next: readonly string[]): RegExp {
  const tail = next.length > 0 ? `(?! (?:${next.join("|")})\\b)` : "";
  return new RegExp(`\\b${name}\\b${tail}`);
}

const GEFORCE_NEXT = ["ti", "super", "laptop", "mobile", "max q", "d"];
const APPLE_NEXT = ["pro", "max", "ultra"];
const T = 1e12, G = 1e9;

const H100 = "NVIDIA H100 Tensor Core GPU datasheet, " +
  "https://resources.nvidia.com/en-us-tensor-core/nvidia-tensor-core-gpu-datasheet";
const H200 =
  "NVIDIA H200 Tensor Core GPU datasheet, https://www.nvidia.com/en-us/data-center/h200/";
const A100 = "NVIDIA A100 Tensor Core GPU datasheet, https://www.nvidia.com/content/dam/en-zz/" +
  "Solutions/Data-Center/a100/pdf/nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf";
const GA102 =
  "NVIDIA Ampere GA102 GPU architecture whitepaper, https://www.nvidia.com/content/PDF/" +
  "nvidia-ampere-ga-102-gpu-architecture-whitepaper-v2.pdf";
const ADA = "NVIDIA Ada GPU architecture whitepaper, " +
  "https://images.nvidia.com/aem-dam/Solutions/geforce/ada/nvidia-ada-gpu-architecture.pdf";
const BLACKWELL = "NVIDIA RTX Blackwell GPU architecture whitepaper, https://images.nvidia.com/" +
  "aem-dam/Solutions/geforce/blackwell/nvidia-rtx-blackwell-gpu-architecture.pdf";
const GEFORCE_30 = "NVIDIA GeForce RTX 30 series specifications (CUDA cores × 2 × boost clock), " +
  "https://www.nvidia.com/en-us/geforce/graphics-cards/30-series/";
const GEFORCE_40 = "NVIDIA GeForce RTX 40 series specifications (CUDA cores × 2 × boost clock), " +
  "https://www.nvidia.com/en-us/geforce/graphics-cards/40-series/";
const RADEON = "AMD Radeon RX 7000 series specifications (peak FP32 counts dual issue), " +
  "https://www.amd.com/en/products/graphics/desktops/radeon.html";
const APPLE_M1 = "Apple Newsroom, M1 (2020-11) and M1 Pro/Max (2021-10) and M1 Ultra (2022-03) " +
  "announcements: TFLOPS and unified memory bandwidth, https://www.apple.com/newsroom/";
const APPLE_M2 = "Apple Newsroom, M2 (2022-06), M2 Pro/Max (2023-01), M2 Ultra (2023-06) " +
  "announcements: GPU cores and memory bandwidth; FLOP/s = cores × 128 × 2 × 1.398 GHz " +
  "(Apple's own 13.6 TFLOPS for the 38-core M2 Max), https://www.apple.com/newsroom/";
const APPLE_M3 = "Apple M3 family specifications (2023-10; GPU cores, memory bandwidth), " +
  "https://www.apple.com/newsroom/; FLOP/s = cores × 128 × 2 × 1.398 GHz (clock: public " +
  "measurements, Apple gives none)";
const APPLE_M4 = "Apple M4 family specifications (2024; GPU cores, memory bandwidth), " +
  "https://www.apple.com/newsroom/; FLOP/s = cores × 128 × 2 × 1.578 GHz (clock: public " +
  "measurements, Apple gives none)";
const INTEL = "Intel ARK specifications (Xe cores × 128 lanes × 2 × graphics clock), " +
  "https://www.intel.com/content/www/us/en/products/details/discrete-gpus/arc.html";
const LARGEST = "largest configuration of this name: % of peak is a lower bound";

/** An Apple GPU: `cores` × 128 f32 lanes × 2 × `ghz`. */
const appleFlops = (cores: number, ghz: number) => cores * 128 * 2 * ghz * G;

function entry(
  name: string,
  vendor: PeakVendor,
  architecture: string,
  match: RegExp,
  peaks: { flops: number; bandwidth: number; source: string; derived?: boolean; note?: string },
): PeakEntry {
  return Object.freeze({
    name,
    vendor,
    architecture,
    match,
    f32Flops: peaks.flops,
    memoryBandwidth: peaks.bandwidth,
    source: peaks.source,
    derived: peaks.derived ?? false,
    ...(peaks.note ? { note: peaks.note } : {}),
  });
}

const nv = (name: string, arch: string, match: RegExp, p: Parameters<typeof entry>[4]) =>
  entry(name, "nvidia", arch, match, p);
const apple = (name: string, match: RegExp, p: Parameters<typeof entry>[4]) =>
  entry(name, "apple", "", match, { note: LARGEST, ...p });

const TABLE: readonly PeakEntry[] = Object.freeze([
  // Data centre. Vulkan names: "NVIDIA H100 80GB HBM3" (SXM5), "NVIDIA H100 PCIe", "NVIDIA H200".
  nv("NVIDIA H100 SXM5 80GB", "hopper", /\bh100\b(?!.*\b(?:pcie|nvl)\b).*\b(?:hbm3|sxm5?)\b/, {
    flops: 67 * T,
    bandwidth: 3.35 * T,
    source: H100,
  }),
  nv("NVIDIA H100 PCIe 80GB", "hopper", /\bh100 pcie\b/, {
    flops: 51 * T,
    bandwidth: 2.0 * T,
    source: H100,
  }),
  nv("NVIDIA H100 NVL 94GB", "hopper", /\bh100 nvl\b/, {
    flops: 60 * T,
    bandwidth: 3.9 * T,
    source: H100,
  }),
  nv("NVIDIA H200 SXM 141GB", "hopper", /\bh200\b(?!.*\bnvl\b)/, {
    flops: 67 * T,
    bandwidth: 4.8 * T,
    source: H200,
  }),
  nv("NVIDIA H200 NVL 141GB", "hopper", /\bh200 nvl\b/, {
    flops: 60 * T,
    bandwidth: 4.8 * T,
    source: H200,
  }),
  nv("NVIDIA A100 40GB (SXM4 or PCIe)", "ampere", /\ba100\b.*\b40gb\b/, {
    flops: 19.5 * T,
    bandwidth: 1.555 * T,
    source: A100,
  }),
  nv("NVIDIA A100 SXM4 80GB", "ampere", /\ba100\b(?=.*\bsxm4?\b)(?=.*\b80gb\b)/, {
    flops: 19.5 * T,
    bandwidth: 2.039 * T,
    source: A100,
  }),
  nv("NVIDIA A100 PCIe 80GB", "ampere", /\ba100\b(?=.*\bpcie\b)(?=.*\b80gb\b)/, {
    flops: 19.5 * T,
    bandwidth: 1.935 * T,
    source: A100,
  }),
  nv("NVIDIA L4", "lovelace", /\bl4\b/, {
    flops: 30.3 * T,
    bandwidth: 300 * G,
    source: "NVIDIA L4 Tensor Core GPU datasheet, https://www.nvidia.com/en-us/data-center/l4/",
  }),
  nv("NVIDIA L40S", "lovelace", /\bl40s\b/, {
    flops: 91.6 * T,
    bandwidth: 864 * G,
    source: "NVIDIA L40S GPU datasheet, https://www.nvidia.com/en-us/data-center/l40s/",
  }),
  // GeForce RTX 30 (Ampere).
  nv("NVIDIA GeForce RTX 3090 Ti", "ampere", model("rtx 3090 ti", []), {
    flops: 10752 * 2 * 1.86 * G,
    bandwidth: 1008 * G,
    source: GEFORCE_30,
    derived: true,
  }),
  nv("NVIDIA GeForce RTX 3090", "ampere", model("rtx 3090", GEFORCE_NEXT), {
    flops: 35.6 * T,
    bandwidth: 936 * G,
    source: GA102,
  }),
  nv("NVIDIA GeForce RTX 3080 Ti", "ampere", model("rtx 3080 ti", ["laptop", "mobile"]), {
    flops: 10240 * 2 * 1.665 * G,
    bandwidth: 912 * G,
    source: GEFORCE_30,
    derived: true,
  }),
  nv("NVIDIA GeForce RTX 3080 (12 GB)", "ampere", model("rtx 3080", GEFORCE_NEXT), {
    flops: 8960 * 2 * 1.71 * G,
    bandwidth: 912 * G,
    source: GEFORCE_30,
    derived: true,
    note: `${LARGEST} (the 10 GB card: 29.8 TFLOP/s, 760 GB/s)`,
  }),
  nv("NVIDIA GeForce RTX 3070", "ampere", model("rtx 3070", GEFORCE_NEXT), {
    flops: 5888 * 2 * 1.725 * G,
    bandwidth: 448 * G,
    source: GEFORCE_30,
    derived: true,
  }),
  // GeForce RTX 40 (Ada Lovelace).
  nv("NVIDIA GeForce RTX 4090", "lovelace", model("rtx 4090", GEFORCE_NEXT), {
    flops: 82.6 * T,
    bandwidth: 1008 * G,
    source: ADA,
  }),
  nv("NVIDIA GeForce RTX 4080 SUPER", "lovelace", model("rtx 4080 super", ["laptop", "mobile"]), {
    flops: 10240 * 2 * 2.55 * G,
    bandwidth: 736 * G,
    source: GEFORCE_40,
    derived: true,
  }),
  nv("NVIDIA GeForce RTX 4080", "lovelace", model("rtx 4080", GEFORCE_NEXT), {
    flops: 48.7 * T,
    bandwidth: 716.8 * G,
    source: ADA,
  }),
  nv("NVIDIA GeForce RTX 4070 Ti", "lovelace", model("rtx 4070 ti", ["super", "laptop"]), {
    flops: 7680 * 2 * 2.61 * G,
    bandwidth: 504 * G,
    source: GEFORCE_40,
    derived: true,
  }),
  nv("NVIDIA GeForce RTX 4070", "lovelace", model("rtx 4070", GEFORCE_NEXT), {
    flops: 5888 * 2 * 2.475 * G,
    bandwidth: 504 * G,
    source: GEFORCE_40,
    derived: true,
    note: `${LARGEST} (GDDR6 card: 480 GB/s)`,
  }),
  nv("NVIDIA GeForce RTX 4060", "lovelace", model("rtx 4060", GEFORCE_NEXT), {
    flops: 3072 * 2 * 2.46 * G,
    bandwidth: 272 * G,
    source: GEFORCE_40,
    derived: true,
  }),
  // GeForce RTX 50 (Blackwell).
  nv("NVIDIA GeForce RTX 5090", "blackwell", model("rtx 5090", GEFORCE_NEXT), {
    flops: 104.8 * T,
    bandwidth: 1792 * G,
    source: BLACKWELL,
  }),
  nv("NVIDIA GeForce RTX 5080", "blackwell", model("rtx 5080", GEFORCE_NEXT), {
    flops: 56.3 * T,
    bandwidth: 960 * G,
    source: BLACKWELL,
  }),
  nv("NVIDIA GeForce RTX 5070 Ti", "blackwell", model("rtx 5070 ti", ["laptop", "mobile"]), {
    flops: 43.9 * T,
    bandwidth: 896 * G,
    source: BLACKWELL,
  }),
  nv("NVIDIA GeForce RTX 5070", "blackwell", model("rtx 5070", GEFORCE_NEXT), {
    flops: 30.9 * T,
    bandwidth: 672 * G,
    source: BLACKWELL,
  }),
  // Apple silicon (Metal names: "Apple M1 Max").
  apple("Apple M1 (8-core GPU)", model("apple m1", APPLE_NEXT), {
    flops: 2.6 * T,
    bandwidth: 68.25 * G,
    source: APPLE_M1,
  }),
  apple("Apple M1 Pro (16-core GPU)", model("apple m1 pro", []), {
    flops: 5.2 * T,
    bandwidth: 200 * G,
    source: APPLE_M1,
  }),
  apple("Apple M1 Max (32-core GPU)", model("apple m1 max", []), {
    flops: 10.4 * T,
    bandwidth: 400 * G,
    source: APPLE_M1,
  }),
  apple("Apple M1 Ultra (64-core GPU)", model("apple m1 ultra", []), {
    flops: 21 * T,
    bandwidth: 800 * G,
    source: APPLE_M1,
  }),
  apple("Apple M2 (10-core GPU)", model("apple m2", APPLE_NEXT), {
    flops: appleFlops(10, 1.398),
    bandwidth: 100 * G,
    source: APPLE_M2,
    derived: true,
  }),
  apple("Apple M2 Pro (19-core GPU)", model("apple m2 pro", []), {
    flops: appleFlops(19, 1.398),
    bandwidth: 200 * G,
    source: APPLE_M2,
    derived: true,
  }),
  apple("Apple M2 Max (38-core GPU)", model("apple m2 max", []), {
    flops: 13.6 * T,
    bandwidth: 400 * G,
    source: APPLE_M2,
  }),
  apple("Apple M2 Ultra (76-core GPU)", model("apple m2 ultra", []), {
    flops: 27.2 * T,
    bandwidth: 800 * G,
    source: APPLE_M2,
  }),
  apple("Apple M3 (10-core GPU)", model("apple m3", APPLE_NEXT), {
    flops: appleFlops(10, 1.398),
    bandwidth: 100 * G,
    source: APPLE_M3,
    derived: true,
  }),
  apple("Apple M3 Pro (18-core GPU)", model("apple m3 pro", []), {
    flops: appleFlops(18, 1.398),
    bandwidth: 150 * G,
    source: APPLE_M3,
    derived: true,
  }),
  apple("Apple M3 Max (40-core GPU)", model("apple m3 max", []), {
    flops: appleFlops(40, 1.398),
    bandwidth: 400 * G,
    source: APPLE_M3,
    derived: true,
    note: `${LARGEST} (30-core GPU: 300 GB/s)`,
  }),
  apple("Apple M4 (10-core GPU)", model("apple m4", APPLE_NEXT), {
    flops: appleFlops(10, 1.578),
    bandwidth: 120 * G,
    source: APPLE_M4,
    derived: true,
  }),
  apple("Apple M4 Pro (20-core GPU)", model("apple m4 pro", []), {
    flops: appleFlops(20, 1.578),
    bandwidth: 273 * G,
    source: APPLE_M4,
    derived: true,
  }),
  apple("Apple M4 Max (40-core GPU)", model("apple m4 max", []), {
    flops: appleFlops(40, 1.578),
    bandwidth: 546 * G,
    source: APPLE_M4,
    derived: true,
    note: `${LARGEST} (32-core GPU: 410 GB/s)`,
  }),
  // AMD Radeon (RDNA 3). RADV names: "AMD Radeon RX 7900 XTX (RADV NAVI31)".
  entry("AMD Radeon RX 7900 XTX", "amd", "rdna-3", model("rx 7900 xtx", []), {
    flops: 61.4 * T,
    bandwidth: 960 * G,
    source: RADEON,
  }),
  entry("AMD Radeon RX 7900 XT", "amd", "rdna-3", model("rx 7900 xt", []), {
    flops: 51.5 * T,
    bandwidth: 800 * G,
    source: RADEON,
  }),
  entry("AMD Radeon RX 7900 GRE", "amd", "rdna-3", model("rx 7900 gre", []), {
    flops: 46 * T,
    bandwidth: 576 * G,
    source: RADEON,
  }),
  // Intel Arc. Names: "Intel(R) Arc(TM) A770 Graphics".
  entry("Intel Arc A770 (16 GB)", "intel", "", model("arc a770", []), {
    flops: 32 * 128 * 2 * 2.1 * G,
    bandwidth: 560 * G,
    source: INTEL,
    derived: true,
    note: `${LARGEST} (8 GB card: 512 GB/s)`,
  }),
  entry("Intel Arc A750", "intel", "", model("arc a750", []), {
    flops: 28 * 128 * 2 * 2.05 * G,
    bandwidth: 512 * G,
    source: INTEL,
    derived: true,
  }),
  entry("Intel Arc B580", "intel", "", model("arc b580", []), {
    flops: 20 * 128 * 2 * 2.67 * G,
    bandwidth: 456 * G,
    source: INTEL,
    derived: true,
  }),
]);

/** Every known GPU's peaks, in table order. */
export const KNOWN_PEAKS: readonly AdapterPeak[] = Object.freeze(
  TABLE.map(({ match: _, ...peak }) => Object.freeze(peak)),
);

/** Lower case; ®/™ marks dropped; every run of other characters one space. */
function normalize(text: string | undefined): string {
  return (text ?? "").toLowerCase().replace(/\((?:r|tm|c)\)/g, "").replace(/[^a-z0-9]+/g, " ")
    .trim();
}

/** The table's vendor named by a vendor string or PCI id; undefined when unknown or empty. */
function vendorOf(vendor: string | undefined): PeakVendor | undefined {
  return VENDOR_IDS[(vendor ?? "").trim().toLowerCase()];
}

/**
 * The peaks of the adapter, when the table knows it: by its name (description, else a device
 * string that is not a bare PCI id), else by vendor + architecture when those single out one
 * entry. Ambiguous (several entries fit) or unknown → null.
 *
 * @param info What the adapter says about itself (`gpu.adapter` or `GPUAdapterInfo`).
 * @returns Its peaks, or null.
 * @example
 * ```ts
 * import { findPeak } from "./peaks.ts";
 * const h100 = findPeak({ vendor: "4318", description: "NVIDIA H100 80GB HBM3" });
 * console.log(h100?.f32Flops); // 67000000000000
 * console.log(findPeak({ vendor: "nvidia", architecture: "hopper" })); // null: H100 or H200?
 * console.log(findPeak({ description: "llvmpipe (LLVM 15.0.6, 256 bits)" })); // null
 * ```
 */
export function findPeak(info: AdapterIdentity): AdapterPeak | null {
  const vendor = vendorOf(info.vendor);
  const rows = TABLE.filter((e) => vendor === undefined || e.vendor === vendor);
  const names = [info.description, /^\d*$/.test(info.device ?? "") ? "" : info.device]
    .map(normalize).filter((n) => n !== "");
  let found: PeakEntry[] = [];
  if (names.length > 0) {
    found = rows.filter((e) => names.some((n) => e.match.test(n)));
  } else if (vendor !== undefined && info.architecture) {
    const arch = normalize(info.architecture);
    found = rows.filter((e) => e.architecture !== "" && normalize(e.architecture) === arch);
  }
  if (found.length !== 1) return null;
  const { match: _, ...peak } = found[0];
  return Object.freeze(peak);
}

/** Units the benches report rates in. */
export type RateUnit = "GFLOP/s" | "GB/s";

/**
 * `rate` as a percentage of the peak that bounds it: f32 FLOP/s for GFLOP/s, memory bandwidth
 * for GB/s.
 *
 * @param rate GFLOP/s or GB/s (units of 1e9 per second).
 * @param unit Which.
 * @param peak The adapter's peaks, or null.
 * @returns The percentage, or null without a peak.
 * @example
 * ```ts
 * import { findPeak, percentOfPeak } from "./peaks.ts";
 * const l4 = findPeak({ description: "NVIDIA L4" });
 * console.log(percentOfPeak(150, "GB/s", l4)); // 50
 * ```
 */
export function percentOfPeak(
  rate: number,
  unit: RateUnit,
  peak: AdapterPeak | null,
): number | null {
  if (!peak) return null;
  const bound = unit === "GFLOP/s" ? peak.f32Flops : peak.memoryBandwidth;
  return (100 * rate * 1e9) / bound;
}

/**
 * ` (12.3 % of f32 peak)` (GFLOP/s) or ` (12.3 % of memory bandwidth)` (GB/s); empty without a
 * peak.
 *
 * @param rate GFLOP/s or GB/s.
 * @param unit Which.
 * @param peak The adapter's peaks, or null.
 * @returns The text, with a leading space when not empty.
 * @example
 * ```ts
 * import { findPeak, peakNote } from "./peaks.ts";
 * console.log(peakNote(150, "GB/s", findPeak({ description: "NVIDIA L4" }))); // " (50.0 % of memory bandwidth)"
 * console.log(peakNote(150, "GB/s", null)); // ""
 * ```
 */
export function peakNote(rate: number, unit: RateUnit, peak: AdapterPeak | null): string {
  const pct = percentOfPeak(rate, unit, peak);
  if (pct === null) return "";
  return ` (${pct.toFixed(1)} % of ${unit === "GFLOP/s" ? "f32 peak" : "memory bandwidth"})`;
}

/**
 * `12.34 GFLOP/s` or, with a peak, `12.34 GFLOP/s (0.0 % of f32 peak)`.
 *
 * @param rate GFLOP/s or GB/s.
 * @param unit Which.
 * @param peak The adapter's peaks, or null.
 * @param digits Decimals of the rate (default 2).
 * @returns The text.
 * @example
 * ```ts
 * import { findPeak, formatRate } from "./peaks.ts";
 * const peak = findPeak({ description: "NVIDIA GeForce RTX 4090" });
 * console.log(formatRate(41300, "GFLOP/s", peak)); // 41300.00 GFLOP/s (50.0 % of f32 peak)
 * ```
 */
export function formatRate(
  rate: number,
  unit: RateUnit,
  peak: AdapterPeak | null,
  digits = 2,
): string {
  return `${rate.toFixed(digits)} ${unit}${peakNote(rate, unit, peak)}`;
}

/**
 * One line naming the adapter's peaks and their source, or saying none is known.
 *
 * @param peak The adapter's peaks, or null.
 * @returns The text.
 * @example
 * ```ts
 * import { findPeak, peakSummary } from "./peaks.ts";
 * console.log(peakSummary(findPeak({ description: "Apple M2 Max" })));
 * console.log(peakSummary(null)); // peak: unknown adapter (no % of peak)
 * ```
 */
export function peakSummary(peak: AdapterPeak | null): string {
  if (!peak) return "peak: unknown adapter (no % of peak)";
  const note = peak.note ? `; ${peak.note}` : "";
  return `peak: ${peak.name}: ${(peak.f32Flops / 1e12).toFixed(1)} TFLOP/s f32, ` +
    `${(peak.memoryBandwidth / 1e9).toFixed(0)} GB/s (${peak.derived ? "derived; " : ""}` +
    `${peak.source}${note})`;
}
