// out[r, :] = LayerNorm(x[r, :] + residual[r, :]) * gamma + beta, one workgroup per row.
// Two passes over the row (mean, then variance of the centred values) for stability, as the
// CPU backend does. Uses `workgroup_sum` from row_sum.wgsl.

struct Params {
    rows: u32,
    dim: u32,  // elements per row
    eps: f32,  // 1e-12 for DistilBERT
    _pad: u32,
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
    var s = 0.0;
    for (var i = tid; i < params.dim; i += 256u) {
        s += x[base + i] + residual[base + i];
    }
    let mean = workgroup_sum(s, tid) / f32(params.dim);
    var v = 0.0;
    for (var i = tid; i < params.dim; i += 256u) {
        let d = x[base + i] + residual[base + i] - mean;
        v += d * d;
    }
    let inv = inverseSqrt(workgroup_sum(v, tid) / f32(params.dim) + params.eps);
    for (var i = tid; i < params.dim; i += 256u) {
        out[base + i] = (x[base + i] + residual[base + i] - mean) * inv * gamma[i] + beta[i];
    }
}
