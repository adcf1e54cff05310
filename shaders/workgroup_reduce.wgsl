// A max or sum across the 128 threads of a workgroup, for the attention kernels (their softmax).
// Included into kernels with @workgroup_size(128), which use WG for their strides.

const WG: u32 = 128u;

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
