// out[M, N] = act(a[M, K] @ w[N, K]^T + bias[N])
//
// `w` is a checkpoint Linear weight as stored ([out, in], row-major), read through `weight(row,
// k)`, which the file prepended to this one defines: matmul_f32.wgsl (f32 as uploaded),
// matmul_f16.wgsl (f16, widened) or matmul_int8.wgsl (int8 packed four to a u32, times the row's
// scale). Rows of `a` are `a_row_stride` elements apart, so a view of the [CLS] rows of a
// [B*L, D] activation (stride L*D) is read in place, with no copy.
//
// Register-blocked: a workgroup of 16x16 threads computes a 64x64 output tile, each thread a 4x4
// block held in four vec4 accumulators (rows 4*ty.., columns 4*tx..). K is walked 16 at a time
// through workgroup memory laid out as vec4s, so the inner loop is two vec4 loads and four vec4
// FMAs. Tiles: 2 x 16 x 64 floats = 8 KiB, within WebGPU's 16 KiB default.

struct Params {
    m: u32,            // rows of a and out
    n: u32,            // columns of out = rows of w
    k: u32,            // columns of a = columns of w
    a_row_stride: u32, // elements between rows of a
    act: u32,          // epilogue: 0 none, 1 GELU (erf), 2 ReLU, 3 GELU (tanh), 4 tanh
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
// Binding 1 is `w`, declared with `weight()` in matmul_f32.wgsl, matmul_f16.wgsl or
// matmul_int8.wgsl.
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

const TILE: u32 = 64u;
const TK: u32 = 16u;

// [TK][TILE / 4] vec4s: a_tile[kk * 16 + r / 4][r % 4] holds a[m0 + r, k0 + kk].
var<workgroup> a_tile: array<vec4<f32>, 256>;
// Likewise w_tile[kk * 16 + c / 4][c % 4] holds w[n0 + c, k0 + kk].
var<workgroup> w_tile: array<vec4<f32>, 256>;

fn epilogue(v: f32) -> f32 {
    if (params.act == 1u) {
        return gelu(v);
    }
    if (params.act == 2u) {
        return max(v, 0.0);
    }
    if (params.act == 3u) {
        return gelu_tanh(v);
    }
    if (params.act == 4u) {
        return tanh_f32(v);
    }
    return v;
}

fn store_row(row: u32, col0: u32, c: vec4<f32>) {
    if (row >= params.m) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        let col = col0 + j;
        if (col < params.n) {
            out[row * params.n + col] = epilogue(c[j] + bias[col]);
        }
    }
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) tid: u32) {
    let m0 = wg.y * TILE;
    let n0 = wg.x * TILE;
    // Each thread loads 4 consecutive k of one row of each tile: row tid / 4, k (tid % 4) * 4 + j.
    let lr = tid / 4u;
    let lk = (tid % 4u) * 4u;
    var c0 = vec4<f32>(0.0);
    var c1 = vec4<f32>(0.0);
    var c2 = vec4<f32>(0.0);
    var c3 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < params.k; k0 += TK) {
        for (var j = 0u; j < 4u; j++) {
            let kg = k0 + lk + j;
            var av = 0.0;
            if (m0 + lr < params.m && kg < params.k) {
                av = a[(m0 + lr) * params.a_row_stride + kg];
            }
            a_tile[(lk + j) * 16u + lr / 4u][lr % 4u] = av;
            var wv = 0.0;
            if (n0 + lr < params.n && kg < params.k) {
                wv = weight(n0 + lr, kg);
            }
            w_tile[(lk + j) * 16u + lr / 4u][lr % 4u] = wv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            let av = a_tile[kk * 16u + lid.y];
            let wv = w_tile[kk * 16u + lid.x];
            c0 = fma(vec4<f32>(av.x), wv, c0);
            c1 = fma(vec4<f32>(av.y), wv, c1);
            c2 = fma(vec4<f32>(av.z), wv, c2);
            c3 = fma(vec4<f32>(av.w), wv, c3);
        }
        workgroupBarrier();
    }
    let row0 = m0 + lid.y * 4u;
    let col0 = n0 + lid.x * 4u;
    store_row(row0, col0, c0);
    store_row(row0 + 1u, col0, c1);
    store_row(row0 + 2u, col0, c2);
    store_row(row0 + 3u, col0, c3);
}
