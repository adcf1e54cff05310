// The f32 word embedding of embed.wgsl: [vocab, dim] row-major.

@group(0) @binding(1) var<storage, read> word: array<f32>;

fn word_value(id: u32, i: u32) -> f32 {
    return word[id * params.dim + i];
}
