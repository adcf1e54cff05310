// A sum across the 256 threads of a workgroup, for the row kernels (LayerNorm). Included into
// kernels with @workgroup_size(256).

var<workgroup> partial: array<f32, 256>;

fn workgroup_sum(v: f32, tid: u32) -> f32 {
    partial[tid] = v;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
        if (tid < s) {
            partial[tid] += partial[tid + s];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier(); // everyone has read partial[0] before it is reused
    return total;
}
