// The int8 word embedding of embed.wgsl (`zeroshot convert --to int8`): row `id` is
// ceil(dim / 4) u32 words, four int8 values each, lowest byte first, and word_scale[id] its scale
// (the packing of matmul_int8.wgsl's weights).

@group(0) @binding(1) var<storage, read> word: array<u32>;
@group(0) @binding(8) var<storage, read> word_scale: array<f32>;

// The signed byte times the row's scale, the f32 product torch's dequantisation makes.
fn word_value(id: u32, i: u32) -> f32 {
    let packed = word[id * ((params.dim + 3u) / 4u) + i / 4u];
    return f32(extractBits(bitcast<i32>(packed), (i % 4u) * 8u, 8u)) * word_scale[id];
}
