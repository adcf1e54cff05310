// The f16 word embedding of embed.wgsl (an f16 checkpoint's, kept as stored): [vocab, dim] halves,
// two to a u32, lowest first. unpack2x16float is core WGSL: no `shader-f16` needed.

@group(0) @binding(1) var<storage, read> word: array<u32>;

fn word_value(id: u32, i: u32) -> f32 {
    let at = id * params.dim + i;
    return unpack2x16float(word[at / 2u])[at % 2u];
}
