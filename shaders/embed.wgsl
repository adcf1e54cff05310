// out[t, :] = LayerNorm((word[ids[t], :] + token_type[types[t], :]) + position[first_position + t % seq, :]),
// one workgroup per token row, summed in BERT's order (DeBERTa's adds the position before the type: the
// same sum but for rounding); without the position term where the
// model has none (`positions` 0: DeBERTa-v3), and without the LayerNorm where the sum is projected
// first (`normalise` 0: DeBERTa's embed_proj runs next, then add_layer_norm.wgsl). `ids` holds the
// token ids, then the token types (rows each). Ids, types and positions were checked against their
// tables before upload. Uses `workgroup_sum` (row_sum.wgsl) and `word_value(id, i)`, from
// embed_f32.wgsl, embed_f16.wgsl or embed_int8.wgsl.

struct Params {
    rows: u32, // batch * seq
    seq: u32,  // tokens per sequence (positions restart every `seq` rows)
    dim: u32,
    eps: f32,
    first_position: u32, // position id of each sequence's first token (RoBERTa: pad_token_id + 1)
    positions: u32,      // 1: add the position rows; 0: none (the binding is a placeholder)
    normalise: u32,      // 1: LayerNorm the sum; 0: write the sum as it is
    _pad0: u32,
}

@group(0) @binding(0) var<storage, read> ids: array<u32>;
// Binding 1 is the word embedding, declared with `word_value()` in embed_f32.wgsl, embed_f16.wgsl or
// embed_int8.wgsl.
@group(0) @binding(2) var<storage, read> position: array<f32>;
@group(0) @binding(3) var<storage, read> token_type: array<f32>;
@group(0) @binding(4) var<storage, read> gamma: array<f32>;
@group(0) @binding(5) var<storage, read> beta: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
@group(0) @binding(7) var<uniform> params: Params;

fn embedding(t: u32, i: u32) -> f32 {
    let kind = ids[params.rows + t];
    let e = word_value(ids[t], i) + token_type[kind * params.dim + i];
    if (params.positions == 0u) {
        return e;
    }
    let p = params.first_position + t % params.seq;
    return e + position[p * params.dim + i];
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
    let t = wg.x;
    if (params.normalise == 0u) {
        for (var i = tid; i < params.dim; i += 256u) {
            out[t * params.dim + i] = embedding(t, i);
        }
        return;
    }
    var s = 0.0;
    for (var i = tid; i < params.dim; i += 256u) {
        s += embedding(t, i);
    }
    let mean = workgroup_sum(s, tid) / f32(params.dim);
    var v = 0.0;
    for (var i = tid; i < params.dim; i += 256u) {
        let d = embedding(t, i) - mean;
        v += d * d;
    }
    let inv = inverseSqrt(workgroup_sum(v, tid) / f32(params.dim) + params.eps);
    for (var i = tid; i < params.dim; i += 256u) {
        out[t * params.dim + i] = (embedding(t, i) - mean) * inv * gamma[i] + beta[i];
    }
}
