// The int8 weight of matmul.wgsl (`zeroshot convert --to int8`): row r of [n, k] is
// ceil(k / 4) u32 words, four int8 values each, lowest byte first (the next row starts on a new
// word), and w_scale[r] its scale. A quarter of f32's bytes in GPU memory; WGSL has no 8-bit
// storage type, hence the packing.

@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(5) var<storage, read> w_scale: array<f32>;

// w[row, kg] dequantised: the signed byte times the row's scale, the same f32 product as the CPU's
// and torch's `q.float() * scale`. The caller checks row < n and kg < k.
fn weight(row: u32, kg: u32) -> f32 {
    let word = w[row * ((params.k + 3u) / 4u) + kg / 4u];
    return f32(extractBits(bitcast<i32>(word), (kg % 4u) * 8u, 8u)) * w_scale[row];
}
