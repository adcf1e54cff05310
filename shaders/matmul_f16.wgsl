// The f16 weight of matmul.wgsl: [n, k] row-major f16 values (an f16 checkpoint's weights, half
// of f32's bytes in GPU memory), on devices with `shader-f16`; gpu.rs puts `enable f16;` first.

@group(0) @binding(1) var<storage, read> w: array<f16>;

// w[row, kg] widened to f32 (exact); the caller checks row < n and kg < k.
fn weight(row: u32, kg: u32) -> f32 {
    return f32(w[row * params.k + kg]);
}
