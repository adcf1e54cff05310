// out[r, :] = LayerNorm(x[r, :] + residual[r, :]) * gamma + beta, one workgroup per row, or
// LayerNorm(x[r, :]) where `with_residual` is 0 (the binding is then a placeholder).
// Rows of `residual` are `residual_stride` floats apart: the last layer's residual is a view of
// every seq-th ([CLS]) row of the layer's input.
// Two passes over the row (mean, then variance of the centred values) for stability, as the
// CPU backend does. Uses `workgroup_sum` from row_sum.wgsl.

struct Params {
    rows: u32,
    dim: u32,  // elements per row
    eps: f32,  // the config's layer_norm_eps (1e-12 for BERT and DistilBERT, 1e-5 for RoBERTa)
    residual_stride: u32, // floats between rows of residual (dim, or seq * dim)
    with_residual: u32,   // 1: add residual; 0: LayerNorm of x alone
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

fn value(base: u32, rbase: u32, i: u32) -> f32 {
    if (params.with_residual == 0u) {
        return x[base + i];
    }
    return x[base + i] + residual[rbase + i];
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> residual: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
    let base = wg.x * params.dim;
    let rbase = wg.x * params.residual_stride;
    var s = 0.0;
    for (var i = tid; i < params.dim; i += 256u) {
        s += value(base, rbase, i);
    }
    let mean = workgroup_sum(s, tid) / f32(params.dim);
    var v = 0.0;
    for (var i = tid; i < params.dim; i += 256u) {
        let d = value(base, rbase, i) - mean;
        v += d * d;
    }
    let inv = inverseSqrt(workgroup_sum(v, tid) / f32(params.dim) + params.eps);
    for (var i = tid; i < params.dim; i += 256u) {
        out[base + i] = (value(base, rbase, i) - mean) * inv * gamma[i] + beta[i];
    }
}
