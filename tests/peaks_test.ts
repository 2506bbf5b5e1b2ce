import assert from "node:assert/strict";
import { findPeak, formatRate, KNOWN_PEAKS, peakSummary, percentOfPeak } from "../bench/peaks.ts";

/** Adapter names as drivers report them → the table entry they must find. */
const NAMES: [string, string][] = [
  ["NVIDIA H100 80GB HBM3", "NVIDIA H100 SXM5 80GB"],
  ["NVIDIA H100 PCIe", "NVIDIA H100 PCIe 80GB"],
  ["NVIDIA H100 NVL", "NVIDIA H100 NVL 94GB"],
  ["NVIDIA H200", "NVIDIA H200 SXM 141GB"],
  ["NVIDIA H200 NVL", "NVIDIA H200 NVL 141GB"],
  ["NVIDIA A100-SXM4-40GB", "NVIDIA A100 40GB (SXM4 or PCIe)"],
  ["NVIDIA A100-PCIE-40GB", "NVIDIA A100 40GB (SXM4 or PCIe)"],
  ["NVIDIA A100-SXM4-80GB", "NVIDIA A100 SXM4 80GB"],
  ["NVIDIA A100 80GB PCIe", "NVIDIA A100 PCIe 80GB"],
  ["NVIDIA L4", "NVIDIA L4"],
  ["NVIDIA L40S", "NVIDIA L40S"],
  ["NVIDIA GeForce RTX 3090", "NVIDIA GeForce RTX 3090"],
  ["NVIDIA GeForce RTX 3090 Ti", "NVIDIA GeForce RTX 3090 Ti"],
  ["NVIDIA GeForce RTX 3080 Ti", "NVIDIA GeForce RTX 3080 Ti"],
  ["NVIDIA GeForce RTX 4090", "NVIDIA GeForce RTX 4090"],
  ["NVIDIA GeForce RTX 4080 SUPER", "NVIDIA GeForce RTX 4080 SUPER"],
  ["NVIDIA GeForce RTX 4080", "NVIDIA GeForce RTX 4080"],
  ["NVIDIA GeForce RTX 4070 Ti", "NVIDIA GeForce RTX 4070 Ti"],
  ["NVIDIA GeForce RTX 5090", "NVIDIA GeForce RTX 5090"],
  ["NVIDIA GeForce RTX 5070", "NVIDIA GeForce RTX 5070"],
  ["Apple M1", "Apple M1 (8-core GPU)"],
  ["Apple M1 Pro", "Apple M1 Pro (16-core GPU)"],
  ["Apple M2 Max", "Apple M2 Max (38-core GPU)"],
  ["Apple M3 Max", "Apple M3 Max (40-core GPU)"],
  ["Apple M4 Max", "Apple M4 Max (40-core GPU)"],
  ["Apple M4", "Apple M4 (10-core GPU)"],
  ["AMD Radeon RX 7900 XTX (RADV NAVI31)", "AMD Radeon RX 7900 XTX"],
  ["AMD Radeon RX 7900 XT", "AMD Radeon RX 7900 XT"],
  ["Intel(R) Arc(TM) A770 Graphics (DG2)", "Intel Arc A770 (16 GB)"],
  ["Intel(R) Arc(TM) B580 Graphics", "Intel Arc B580"],
];

Deno.test("findPeak() finds each GPU by the name its driver reports", () => {
  for (const [description, name] of NAMES) {
    assert.equal(findPeak({ description })?.name, name, description);
  }
});

Deno.test("findPeak() tells a card from its Ti, SUPER and Laptop siblings", () => {
  for (
    const description of [
      "NVIDIA GeForce RTX 4090 Laptop GPU",
      "NVIDIA GeForce RTX 4070 Ti SUPER", // not in the table
      "NVIDIA GeForce RTX 3060", // not in the table
      "Apple M3 Ultra", // not in the table; must not fall back to the M3
    ]
  ) {
    assert.equal(findPeak({ description }), null, description);
  }
  assert.equal(
    findPeak({ description: "NVIDIA GeForce RTX 4070" })?.name,
    "NVIDIA GeForce RTX 4070",
  );
  assert.equal(findPeak({ description: "NVIDIA GeForce RTX 3080" })?.note?.includes("10 GB"), true);
});

Deno.test("findPeak() uses Deno's decimal PCI vendor id and refuses a contradicting vendor", () => {
  const h100 = findPeak({ vendor: "4318", device: "8961", description: "NVIDIA H100 80GB HBM3" });
  assert.equal(h100?.f32Flops, 67e12);
  assert.equal(h100?.memoryBandwidth, 3.35e12);
  // An AMD vendor id with an NVIDIA name is not trusted.
  assert.equal(findPeak({ vendor: "4098", description: "NVIDIA H100 80GB HBM3" }), null);
});

Deno.test("findPeak() gives no peak for software or unknown adapters", () => {
  for (
    const info of [
      { vendor: "65541", device: "0", description: "llvmpipe (LLVM 15.0.6, 256 bits)" },
      { vendor: "google", architecture: "swiftshader", description: "" },
      { vendor: "nvidia", description: "NVIDIA GeForce GTX 1080" },
      {},
    ]
  ) {
    assert.equal(findPeak(info), null, JSON.stringify(info));
  }
});

Deno.test("findPeak() by vendor and architecture only when they single out one GPU", () => {
  // Browsers: vendor "nvidia", architecture "hopper" → H100 or H200 → ambiguous.
  assert.equal(findPeak({ vendor: "nvidia", architecture: "hopper" }), null);
  assert.equal(findPeak({ vendor: "amd", architecture: "rdna-3" }), null);
  // No architecture, no name: nothing to go on.
  assert.equal(findPeak({ vendor: "nvidia" }), null);
});

Deno.test("KNOWN_PEAKS: every entry has positive peaks and a source; names are unique", () => {
  const names = new Set<string>();
  for (const p of KNOWN_PEAKS) {
    assert.ok(p.f32Flops > 1e12 && p.f32Flops < 2e14, `${p.name} f32 ${p.f32Flops}`);
    assert.ok(p.memoryBandwidth > 5e10 && p.memoryBandwidth < 1e13, `${p.name} bandwidth`);
    assert.ok(p.source.length > 20, `${p.name} source`);
    assert.ok(!names.has(p.name), `duplicate ${p.name}`);
    names.add(p.name);
  }
  for (const vendor of ["nvidia", "apple", "amd", "intel"]) {
    assert.ok(KNOWN_PEAKS.some((p) => p.vendor === vendor), vendor);
  }
});

Deno.test("percentOfPeak() and formatRate() divide by the bound of the unit", () => {
  const l4 = findPeak({ description: "NVIDIA L4" });
  assert.equal(percentOfPeak(150, "GB/s", l4), 50);
  assert.ok(Math.abs(percentOfPeak(3030, "GFLOP/s", l4)! - 10) < 1e-9);
  assert.equal(percentOfPeak(150, "GB/s", null), null);
  assert.equal(formatRate(150, "GB/s", l4), "150.00 GB/s (50.0 % of memory bandwidth)");
  assert.equal(formatRate(3030, "GFLOP/s", l4, 0), "3030 GFLOP/s (10.0 % of f32 peak)");
  assert.equal(formatRate(12.345, "GFLOP/s", null), "12.35 GFLOP/s");
  assert.match(peakSummary(l4), /^peak: NVIDIA L4: 30\.3 TFLOP\/s f32, 300 GB\/s \(NVIDIA L4/);
  assert.equal(peakSummary(null), "peak: unknown adapter (no % of peak)");
});
