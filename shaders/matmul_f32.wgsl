// The f32 weight of matmul.wgsl: [n, k] row-major, as the checkpoint stores it.

@group(0) @binding(1) var<storage, read> w: array<f32>;

// w[row, kg]; the caller checks row < n and kg < k.
fn weight(row: u32, kg: u32) -> f32 {
    return w[row * params.k + kg];
}
