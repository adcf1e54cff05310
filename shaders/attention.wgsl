// Self-attention core for one (query row, head, sequence) per workgroup:
//   ctx[q] = softmax(q . k^T * scale + key_bias) @ v      over the `seq` keys of its sequence.
// qkv is [batch*seq, 3*dim]: q | k | v side by side (the fused projection), heads side by side
// within each (head h = columns h*head_dim.. of its third). Only the first `queries` positions of
// each sequence are queries (seq, or 1 for the [CLS]-only last layer); ctx is
// [batch*queries, dim].
// key_bias is 0 for real tokens and -1e30 for padding (converted from the HF mask on the host).
// Scores for up to MAX_SEQ keys live in workgroup memory; the max-subtracted softmax matches the
// CPU backend's.

struct Params {
    seq: u32,      // tokens per sequence (<= MAX_SEQ)
    dim: u32,      // n_heads * head_dim; qkv rows are 3 * dim floats
    head_dim: u32, // <= 256
    scale: f32,    // 1 / sqrt(head_dim)
    queries: u32,  // query rows per sequence: seq, or 1 ([CLS] only)
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> qkv: array<f32>;
@group(0) @binding(1) var<storage, read> key_bias: array<f32>;
@group(0) @binding(2) var<storage, read_write> ctx: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

const MAX_SEQ: u32 = 1024u;
const WG: u32 = 128u;

var<workgroup> scores: array<f32, 1024>;
var<workgroup> q_row: array<f32, 256>;
var<workgroup> red: array<f32, 128>;

fn reduce(v: f32, tid: u32, is_max: bool) -> f32 {
    red[tid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (tid < s) {
            if (is_max) {
                red[tid] = max(red[tid], red[tid + s]);
            } else {
                red[tid] += red[tid + s];
            }
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
    let qi = wg.x;   // query position
    let h = wg.y;    // head
    let b = wg.z;    // sequence in the batch
    let row0 = b * params.seq;
    let stride = 3u * params.dim; // floats per qkv row
    let q0 = h * params.head_dim; // this head's columns of q, k (+dim) and v (+2*dim)
    let k0 = params.dim + q0;
    let v0 = 2u * params.dim + q0;
    for (var d = tid; d < params.head_dim; d += WG) {
        q_row[d] = qkv[(row0 + qi) * stride + q0 + d];
    }
    workgroupBarrier();
    var local_max = -3.0e38;
    for (var j = tid; j < params.seq; j += WG) {
        var s = 0.0;
        let kb = (row0 + j) * stride + k0;
        for (var d = 0u; d < params.head_dim; d++) {
            s = fma(q_row[d], qkv[kb + d], s);
        }
        s = s * params.scale + key_bias[row0 + j];
        scores[j] = s;
        local_max = max(local_max, s);
    }
    let m = reduce(local_max, tid, true);
    var local_sum = 0.0;
    for (var j = tid; j < params.seq; j += WG) {
        let e = exp(scores[j] - m);
        scores[j] = e;
        local_sum += e;
    }
    let inv = 1.0 / reduce(local_sum, tid, false);
    for (var d = tid; d < params.head_dim; d += WG) {
        var acc = 0.0;
        for (var j = 0u; j < params.seq; j++) {
            acc = fma(scores[j], qkv[(row0 + j) * stride + v0 + d], acc);
        }
        ctx[(b * params.queries + qi) * params.dim + q0 + d] = acc * inv;
    }
}
