// Self-attention core for one (query row, head, sequence) per workgroup:
//   ctx[q] = softmax(s_qj * scale + key_bias[j]) @ v      over the `seq` keys j of its sequence,
//   s_qj = q . k_j                                           (every family), plus DeBERTa's
//        + q . pos_key[r] (c2p, flags bit 0) + k_j . pos_query[r] (p2c, flags bit 1),
// r = rows[q - j + row_zero] the relative embeddings' row of the distance (src/relative.rs).
// qkv is [batch*seq, 3*dim]: q | k | v side by side (the fused projection), heads side by side
// within each (head h = columns h*head_dim.. of its third). Only the first `queries` positions of
// each sequence are queries (seq, or 1 for the [CLS]-only last layer); ctx is [batch*queries, dim].
// `projected` is the layer's relative embeddings through its position projections,
// [2*span, pos_width]: the position queries from column 0 (with p2c), the position keys from
// column `key_column` (with c2p), heads side by side in each; `rows` holds each row index as f32.
// Without relative terms (flags 0) both bindings are placeholders, never read.
// key_bias is 0 for real tokens and -1e30 for padding (converted from the HF mask on the host).
// Keys are taken CHUNK at a time with their scores in workgroup memory, the softmax's running max
// and sum carried from chunk to chunk, so a text of any length fits; a sequence of at most CHUNK
// keys is one chunk: the max-subtracted two-pass softmax of the CPU backend. Uses `reduce`
// (workgroup_reduce.wgsl).

struct Params {
    seq: u32,        // tokens per sequence (padded)
    dim: u32,        // n_heads * head_dim; qkv rows are 3 * dim floats
    head_dim: u32,   // <= 256
    scale: f32,      // 1 / sqrt(head_dim), DeBERTa's 1 / sqrt(head_dim * (1 + terms))
    queries: u32,    // query rows per sequence: seq, or 1 ([CLS] only)
    pos_width: u32,  // floats per row of `projected`: terms * dim
    key_column: u32, // first column of the position keys in `projected`
    flags: u32,      // bit 0: c2p, bit 1: p2c
    row_zero: u32,   // index of distance 0 in `rows` (max_tokens - 1)
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> qkv: array<f32>;
@group(0) @binding(1) var<storage, read> key_bias: array<f32>;
@group(0) @binding(2) var<storage, read> projected: array<f32>;
@group(0) @binding(3) var<storage, read> rows: array<f32>;
@group(0) @binding(4) var<storage, read_write> ctx: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

const CHUNK: u32 = 1024u;

var<workgroup> scores: array<f32, 1024>;
var<workgroup> q_row: array<f32, 256>;

// The unscaled score of query `qi` (in q_row) and key j (row `row0 + j`) of head columns `h0`.
fn score(qi: u32, j: u32, row0: u32, h0: u32) -> f32 {
    let stride = 3u * params.dim;
    let kb = (row0 + j) * stride + params.dim + h0;
    var s = 0.0;
    for (var d = 0u; d < params.head_dim; d++) {
        s = fma(q_row[d], qkv[kb + d], s);
    }
    if (params.flags == 0u) {
        return s;
    }
    let r = u32(rows[u32(i32(params.row_zero) + i32(qi) - i32(j))]);
    let pb = r * params.pos_width;
    if ((params.flags & 1u) != 0u) {
        for (var d = 0u; d < params.head_dim; d++) {
            s = fma(q_row[d], projected[pb + params.key_column + h0 + d], s);
        }
    }
    if ((params.flags & 2u) != 0u) {
        for (var d = 0u; d < params.head_dim; d++) {
            s = fma(qkv[kb + d], projected[pb + h0 + d], s);
        }
    }
    return s;
}

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
    let qi = wg.x;   // query position
    let h = wg.y;    // head
    let b = wg.z;    // sequence in the batch
    let row0 = b * params.seq;
    let stride = 3u * params.dim;
    let h0 = h * params.head_dim;
    for (var d = tid; d < params.head_dim; d += WG) {
        q_row[d] = qkv[(row0 + qi) * stride + h0 + d];
    }
    workgroupBarrier();
    var m = -3.0e38;       // running max of the scores so far
    var total = 0.0;       // running sum of exp(score - m)
    var acc = array<f32, 2>(0.0, 0.0); // this thread's context dims tid and tid + WG, times total
    for (var c0 = 0u; c0 < params.seq; c0 += CHUNK) {
        let n = min(CHUNK, params.seq - c0);
        var local_max = -3.0e38;
        for (var j = tid; j < n; j += WG) {
            let s = score(qi, c0 + j, row0, h0) * params.scale + key_bias[row0 + c0 + j];
            scores[j] = s;
            local_max = max(local_max, s);
        }
        let new_m = max(m, reduce(local_max, tid, true));
        let rescale = exp(m - new_m);
        var local_sum = 0.0;
        for (var j = tid; j < n; j += WG) {
            let e = exp(scores[j] - new_m);
            scores[j] = e;
            local_sum += e;
        }
        total = total * rescale + reduce(local_sum, tid, false);
        for (var i = 0u; i < 2u; i++) {
            let d = tid + i * WG;
            if (d < params.head_dim) {
                var a = acc[i] * rescale;
                for (var j = 0u; j < n; j++) {
                    a = fma(scores[j], qkv[(row0 + c0 + j) * stride + 2u * params.dim + h0 + d], a);
                }
                acc[i] = a;
            }
        }
        m = new_m;
        workgroupBarrier(); // every thread is done with this chunk's scores
    }
    let inv = 1.0 / total;
    for (var i = 0u; i < 2u; i++) {
        let d = tid + i * WG;
        if (d < params.head_dim) {
            ctx[(b * params.queries + qi) * params.dim + h0 + d] = acc[i] * inv;
        }
    }
}
