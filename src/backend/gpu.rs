//! The GPU backend: the encoder in WGSL compute shaders through wgpu, so the same kernels run on
//! WebGPU in browsers and on Vulkan/Metal/DX12 natively.
//!
//! The context is built once (adapter, device, pipelines compiled at creation); weights are
//! uploaded once, one buffer per tensor, straight from the loaded bytes; activations come from a
//! pool of buffers reused within and across forwards. One forward records into one compute pass
//! of one command encoder, submitted once, and only the logits are read back (asynchronously: `map_async`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use wgpu::util::DeviceExt;

use super::{Backend, Batch, MAX_BATCH_ROWS, Positions, Queries};
use crate::config::{Activation, Config};
use crate::error::{Error, Result};
use crate::weights::{Embeddings, LayerNorm, Linear, Tensor, Values};

/// Largest head the attention kernel holds (`q_row` in attention.wgsl).
const MAX_HEAD_DIM: usize = 256;
/// Output tile of matmul.wgsl, per workgroup.
const MATMUL_TILE: u32 = 64;

/// How to pick and size the GPU.
#[derive(Debug, Clone, Default)]
pub struct GpuOptions {
    /// Accept software adapters (lavapipe, SwiftShader, WARP). `auto` leaves them out: our CPU
    /// backend is faster than they are.
    pub allow_software: bool,
    /// Caps activation buffers below the device's binding limit (tests use it to force batch
    /// splitting); weights are always held to the device's own limit.
    pub max_activation_bytes: Option<u64>,
}

/// A 2-D f32 tensor in a GPU buffer. Rows are `row_stride` elements apart (== cols unless this
/// is a view of every L-th row, as for the [CLS] rows).
pub struct GpuTensor {
    buffer: Rc<PooledBuffer>,
    rows: usize,
    cols: usize,
    row_stride: usize,
    /// How `buffer` holds the values: f32 for every activation, f16 or int8 for some weights.
    packing: Packing,
}

/// A weight's form in GPU memory, which picks the pipeline that reads it (matmul, or embed for an
/// int8 word embedding).
enum Packing {
    F32,
    /// f16 values: a Linear weight (`shaders/matmul_f16.wgsl`) where the device has `shader-f16`
    /// and every value is exactly an f16 (an f16 checkpoint's are), or an f16 word embedding as
    /// stored (`shaders/embed_f16.wgsl`, on any device).
    F16,
    /// int8 values packed four to a u32, with the buffer of their [rows] scales
    /// (`shaders/matmul_int8.wgsl`).
    Int8(Rc<PooledBuffer>),
}

/// A buffer that goes back to its pool when the last tensor using it is dropped. Reusing it in a
/// later dispatch of the same command encoder is safe: wgpu orders dispatches and inserts barriers.
struct PooledBuffer {
    buffer: wgpu::Buffer,
    pool: Option<Rc<RefCell<Pool>>>,
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if let Some(pool) = &self.pool {
            pool.borrow_mut().give_back(self.buffer.clone());
        }
    }
}

/// Bytes of free buffers the pool keeps at most; beyond it a returned buffer is dropped.
const POOL_FREE_BYTES: u64 = 256 << 20;

/// Free activation buffers by size class in bytes. Sizes are rounded up to powers of two (see
/// [`size_class`]), so texts of every length share a few dozen classes at most, and the free
/// bytes are capped: a stream of texts of varying length cannot grow GPU memory without end.
#[derive(Default)]
struct Pool {
    free: HashMap<u64, Vec<wgpu::Buffer>>,
    free_bytes: u64,
}

impl Pool {
    fn take(&mut self, size: u64) -> Option<wgpu::Buffer> {
        let buffer = self.free.get_mut(&size).and_then(Vec::pop)?;
        self.free_bytes -= size;
        Some(buffer)
    }

    fn give_back(&mut self, buffer: wgpu::Buffer) {
        if self.free_bytes + buffer.size() > POOL_FREE_BYTES {
            // Over the cap: dropped, not destroyed, since a recorded dispatch may still use it;
            // wgpu frees it once no command needs it.
            return;
        }
        self.free_bytes += buffer.size();
        self.free.entry(buffer.size()).or_default().push(buffer);
    }
}

/// The pool's size class for `bytes`: the next power of two (at least 256), or `bytes` itself
/// where that would exceed `limit` (the device's binding size).
fn size_class(bytes: u64, limit: u64) -> u64 {
    let class = bytes.max(256).next_power_of_two();
    if class > limit { bytes } else { class }
}

/// A batch's ids, token types and attention-mask bias on the GPU.
pub struct GpuInput {
    /// [batch*seq] ids, then [batch*seq] token types.
    ids: GpuTensor,
    first_position: usize,
    key_bias: GpuTensor,
    batch: usize,
    seq: usize,
}

/// The compiled kernels, one per `shaders/*.wgsl` family, with their bind group layouts.
struct Kernels {
    embed: (wgpu::ComputePipeline, wgpu::BindGroupLayout),
    embed_int8: (wgpu::ComputePipeline, wgpu::BindGroupLayout),
    embed_f16: (wgpu::ComputePipeline, wgpu::BindGroupLayout),
    matmul: (wgpu::ComputePipeline, wgpu::BindGroupLayout),
    matmul_int8: (wgpu::ComputePipeline, wgpu::BindGroupLayout),
    /// Only on devices with `shader-f16`.
    matmul_f16: Option<(wgpu::ComputePipeline, wgpu::BindGroupLayout)>,
    attention: (wgpu::ComputePipeline, wgpu::BindGroupLayout),
    add_layer_norm: (wgpu::ComputePipeline, wgpu::BindGroupLayout),
}

/// Bytes between two dispatches' parameters (WebGPU's minimum uniform offset alignment).
const PARAM_SLOT: usize = 256;
/// Bytes per parameter buffer.
const PARAM_CHUNK: usize = 64 * 1024;

/// The `Params` uniforms of one forward, 256 bytes apart in reusable 64 KiB buffers, written with
/// one queue write per buffer just before the submit: nothing is allocated per dispatch.
#[derive(Default)]
struct ParamArena {
    chunks: Vec<wgpu::Buffer>,
    data: Vec<u8>,
}

impl ParamArena {
    /// Stages `params` and returns where they will be: (buffer, byte offset).
    fn push(&mut self, device: &wgpu::Device, params: &[u32]) -> (wgpu::Buffer, u64) {
        let at = self.data.len();
        self.data.extend_from_slice(bytemuck::cast_slice(params));
        self.data.resize(at + PARAM_SLOT, 0);
        let chunk = at / PARAM_CHUNK;
        while self.chunks.len() <= chunk {
            self.chunks.push(device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("params"),
                size: PARAM_CHUNK as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }));
        }
        (self.chunks[chunk].clone(), (at % PARAM_CHUNK) as u64)
    }

    /// Queues the staged parameters for upload and starts over.
    fn flush(&mut self, queue: &wgpu::Queue) {
        for (chunk, bytes) in self.chunks.iter().zip(self.data.chunks(PARAM_CHUNK)) {
            queue.write_buffer(chunk, 0, bytes);
        }
        self.data.clear();
    }
}

/// Errors the device reports outside error scopes, and why it was lost, if it was.
#[derive(Default)]
struct DeviceErrors {
    uncaptured: Vec<String>,
    lost: Option<String>,
}

/// The encoder on a GPU.
pub struct GpuBackend {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    kernels: Kernels,
    pool: Rc<RefCell<Pool>>,
    /// The forward's one compute pass (declared before `encoder`: it must end first).
    pass: Option<wgpu::ComputePass<'static>>,
    encoder: Option<wgpu::CommandEncoder>,
    params: ParamArena,
    /// Mappable buffer the logits are copied into, kept across forwards.
    readback: Option<wgpu::Buffer>,
    errors: Arc<Mutex<DeviceErrors>>,
    /// The device's bytes per storage binding.
    max_binding: u64,
    /// Bytes per activation buffer (at most `max_binding`).
    max_activation: u64,
    /// Test hook: destroy the device once the next forward is submitted (see `lose_device_in_next_read`).
    lose_in_next_read: bool,
    /// Bytes of weights uploaded so far (see [`GpuBackend::weight_bytes`]).
    weight_bytes: std::cell::Cell<u64>,
}

impl GpuBackend {
    /// Finds an adapter, opens a device and compiles every kernel.
    pub async fn new(options: GpuOptions) -> Result<Self> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = pick_adapter(&instance, options.allow_software).await?;
        let info = adapter.get_info();
        let available = adapter.limits();
        let required_limits = wgpu::Limits {
            max_storage_buffer_binding_size: available.max_storage_buffer_binding_size,
            max_buffer_size: available.max_buffer_size,
            ..wgpu::Limits::default()
        };
        // f16 weights stay f16 where the adapter can read them (matmul_f16.wgsl); elsewhere f32.
        let required_features = adapter.features() & wgpu::Features::SHADER_F16;
        let descriptor = wgpu::DeviceDescriptor {
            label: Some("zeroshot"),
            required_limits,
            required_features,
            ..Default::default()
        };
        let (device, queue) =
            adapter.request_device(&descriptor).await.map_err(|e| gpu_error(&info, format!("no device: {e}")))?;
        let errors = Arc::new(Mutex::new(DeviceErrors::default()));
        watch_errors(&device, &errors);
        let kernels = compile(&device).await.map_err(|e| gpu_error(&info, e))?;
        let max_binding = device.limits().max_storage_buffer_binding_size;
        let max_activation = options.max_activation_bytes.unwrap_or(u64::MAX).min(max_binding);
        Ok(GpuBackend {
            device,
            queue,
            info,
            kernels,
            pool: Rc::default(),
            pass: None,
            encoder: None,
            params: ParamArena::default(),
            readback: None,
            errors,
            max_binding,
            max_activation,
            lose_in_next_read: false,
            weight_bytes: Default::default(),
        })
    }

    /// The adapter in use, e.g. "NVIDIA H100 80GB HBM3 (Vulkan)".
    pub fn adapter_name(&self) -> String {
        format!("{} ({:?})", self.info.name, self.info.backend)
    }

    /// Whether f16 weights stay f16 here (the device has `shader-f16`).
    pub fn holds_f16(&self) -> bool {
        self.kernels.matmul_f16.is_some()
    }

    /// Bytes of GPU memory the weights take: what f16 and int8 storage save is visible here.
    pub fn weight_bytes(&self) -> u64 {
        self.weight_bytes.get()
    }

    /// Free activation buffers the pool holds: (size classes, bytes).
    pub fn pool_usage(&self) -> (usize, u64) {
        let pool = self.pool.borrow();
        (pool.free.values().filter(|v| !v.is_empty()).count(), pool.free_bytes)
    }

    /// Whether the adapter is a software rasteriser rather than a GPU.
    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// For tests of recovery: the device is destroyed right after the next forward is submitted,
    /// as a driver reset or a browser reclaiming the GPU would do to a call in flight.
    pub fn lose_device_in_next_read(&mut self) {
        self.lose_in_next_read = true;
    }

    /// Fails if the device was lost or reported an error since the last check.
    fn check_device(&self) -> Result<()> {
        let mut errors = self.errors.lock().map_err(|_| Error::Gpu("error state poisoned".into()))?;
        if let Some(reason) = &errors.lost {
            return Err(gpu_error(&self.info, format!("device lost: {reason}")));
        }
        if !errors.uncaptured.is_empty() {
            let all = std::mem::take(&mut errors.uncaptured).join("; ");
            return Err(gpu_error(&self.info, all));
        }
        Ok(())
    }

    /// An activation buffer of `rows x cols` f32, from the pool when one of that size is free.
    fn alloc(&mut self, rows: usize, cols: usize) -> Result<GpuTensor> {
        let bytes = (rows * cols * 4).max(4) as u64;
        if bytes > self.max_activation {
            return Err(Error::Gpu(format!(
                "a {rows}x{cols} activation needs {bytes} bytes, over the device's {} per binding",
                self.max_activation
            )));
        }
        let size = size_class(bytes, self.max_activation);
        let reused = self.pool.borrow_mut().take(size);
        let buffer = reused.unwrap_or_else(|| {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("activation"),
                size,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        });
        let buffer = Rc::new(PooledBuffer { buffer, pool: Some(Rc::clone(&self.pool)) });
        Ok(GpuTensor { buffer, rows, cols, row_stride: cols, packing: Packing::F32 })
    }

    /// Records one dispatch: `buffers` bound at 0.., the `params` uniform after them.
    fn dispatch(&mut self, kernel: Kernel, buffers: &[&wgpu::Buffer], params: &[u32], groups: [u32; 3]) -> Result<()> {
        self.dispatch_with(kernel, buffers, params, &[], groups)
    }

    /// [`Self::dispatch`] with `after` bound past the uniform (an int8 weight's scales).
    fn dispatch_with(
        &mut self,
        kernel: Kernel,
        buffers: &[&wgpu::Buffer],
        params: &[u32],
        after: &[&wgpu::Buffer],
        groups: [u32; 3],
    ) -> Result<()> {
        let (pipeline, layout) = match kernel {
            Kernel::Embed => &self.kernels.embed,
            Kernel::EmbedInt8 => &self.kernels.embed_int8,
            Kernel::EmbedF16 => &self.kernels.embed_f16,
            Kernel::Matmul => &self.kernels.matmul,
            Kernel::MatmulInt8 => &self.kernels.matmul_int8,
            Kernel::MatmulF16 => {
                self.kernels.matmul_f16.as_ref().ok_or_else(|| Error::Gpu("f16 weights without shader-f16".into()))?
            }
            Kernel::Attention => &self.kernels.attention,
            Kernel::AddLayerNorm => &self.kernels.add_layer_norm,
        };
        let (uniform, offset) = self.params.push(&self.device, params);
        let uniform = wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &uniform,
            offset,
            size: std::num::NonZeroU64::new((params.len() * 4) as u64),
        });
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .map(|b| b.as_entire_binding())
            .chain([uniform])
            .chain(after.iter().map(|b| b.as_entire_binding()))
            .enumerate()
            .map(|(i, resource)| wgpu::BindGroupEntry { binding: i as u32, resource })
            .collect();
        let bind_group =
            self.device.create_bind_group(&wgpu::BindGroupDescriptor { label: None, layout, entries: &entries });
        let pass = self.pass.as_mut().ok_or_else(|| Error::Gpu("dispatch outside a forward".into()))?;
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        Ok(())
    }

    /// A pooled buffer holding `values` (written just before the next submit).
    fn input_buffer<T: bytemuck::Pod>(&mut self, values: &[T]) -> Result<GpuTensor> {
        let t = self.alloc(values.len(), 1)?;
        self.queue.write_buffer(&t.buffer.buffer, 0, bytemuck::cast_slice(values));
        Ok(t)
    }

    /// The readback buffer, grown when `size` bytes do not fit.
    fn readback_buffer(&mut self, size: u64) -> wgpu::Buffer {
        match &self.readback {
            Some(b) if b.size() >= size => b.clone(),
            _ => {
                let b = self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("readback"),
                    size: size.next_power_of_two(),
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                self.readback = Some(b.clone());
                b
            }
        }
    }

    /// Uploads a weight's bytes as a storage buffer.
    fn upload(&self, label: &str, bytes: &[u8]) -> Result<wgpu::Buffer> {
        self.weight_bytes.set(self.weight_bytes.get() + bytes.len() as u64);
        if bytes.len() as u64 > self.max_binding {
            return Err(Error::Gpu(format!(
                "{label} has {} bytes, over the device's {} per storage binding",
                bytes.len(),
                self.max_binding
            )));
        }
        Ok(self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: if bytes.is_empty() { &[0; 4] } else { bytes },
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        }))
    }

    /// attention.wgsl's relative-term parameters (pos_width, key_column, flags, row_zero) and
    /// buffers for sequences of `seq` tokens.
    fn relative_params<'p>(
        &self,
        p: Positions<'p, GpuTensor>,
        seq: usize,
        dim: usize,
    ) -> Result<([u32; 4], &'p wgpu::Buffer, &'p wgpu::Buffer)> {
        let row_zero = p.rows.cols / 2; // the table holds distances -row_zero..=row_zero
        if seq > row_zero + 1 || p.projected.cols != p.width(dim) {
            return Err(Error::Gpu(format!("attention: {seq} tokens past the relative positions' table")));
        }
        let flags = u32::from(p.c2p) | (u32::from(p.p2c) << 1);
        let values = [p.projected.cols as u32, p.key_column(dim) as u32, flags, row_zero as u32];
        Ok((values, &p.projected.buffer.buffer, &p.rows.buffer.buffer))
    }

    /// Submits the forward's encoder with a copy of `t` into a mappable buffer, and waits for it.
    async fn submit_and_read(&mut self, t: &GpuTensor) -> Result<Vec<f32>> {
        self.pass = None; // ends the forward's compute pass, unlocking its encoder
        // Normally the forward's encoder; a later read of an already computed tensor gets its own.
        let mut encoder = match self.encoder.take() {
            Some(encoder) => encoder,
            None => self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("read") }),
        };
        // A strided view's last row ends `cols` into its stride.
        let size = (((t.rows.max(1) - 1) * t.row_stride + t.cols) * 4) as u64;
        let staging = self.readback_buffer(size);
        encoder.copy_buffer_to_buffer(&t.buffer.buffer, 0, &staging, 0, size);
        self.params.flush(&self.queue);
        self.queue.submit([encoder.finish()]);
        if std::mem::take(&mut self.lose_in_next_read) {
            self.device.destroy();
        }
        let (sender, receiver) = futures_channel::oneshot::channel();
        staging.slice(..size).map_async(wgpu::MapMode::Read, move |r| drop(sender.send(r)));
        #[cfg(not(target_arch = "wasm32"))]
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| gpu_error(&self.info, format!("waiting for the GPU: {e}")))?;
        let mapped = receiver.await.map_err(|_| gpu_error(&self.info, "readback was cancelled".into()))?;
        self.check_device()?;
        mapped.map_err(|e| gpu_error(&self.info, format!("readback failed: {e}")))?;
        let view =
            staging.slice(..size).get_mapped_range().map_err(|e| gpu_error(&self.info, format!("readback: {e}")))?;
        let values: Vec<f32> = bytemuck::cast_slice(&view).to_vec();
        drop(view);
        staging.unmap();
        Ok(values)
    }
}

#[derive(Clone, Copy)]
enum Kernel {
    Embed,
    EmbedInt8,
    EmbedF16,
    Matmul,
    MatmulInt8,
    MatmulF16,
    Attention,
    AddLayerNorm,
}

fn gpu_error(info: &wgpu::AdapterInfo, message: String) -> Error {
    Error::Gpu(format!("{message} (adapter: {} on {:?})", info.name, info.backend))
}

/// The best adapter: a discrete GPU before an integrated one before anything else; software
/// adapters only when `allow_software`.
async fn pick_adapter(instance: &wgpu::Instance, allow_software: bool) -> Result<wgpu::Adapter> {
    #[cfg(not(target_arch = "wasm32"))]
    let candidates = instance.enumerate_adapters(wgpu::Backends::all()).await;
    #[cfg(target_arch = "wasm32")]
    let candidates: Vec<wgpu::Adapter> = {
        let options = wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        };
        instance.request_adapter(&options).await.into_iter().collect()
    };
    let rank = |a: &wgpu::Adapter| match a.get_info().device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    };
    let seen: Vec<String> =
        candidates.iter().map(|a| format!("{} ({:?})", a.get_info().name, a.get_info().device_type)).collect();
    candidates
        .into_iter()
        .filter(|a| allow_software || a.get_info().device_type != wgpu::DeviceType::Cpu)
        .min_by_key(rank)
        .ok_or_else(|| {
            let found = if seen.is_empty() { "none".to_string() } else { seen.join(", ") };
            let hint =
                if allow_software { "" } else { "; software adapters are skipped unless the GPU backend is forced" };
            Error::Gpu(format!("no usable GPU adapter (found: {found}{hint})"))
        })
}

/// Records device errors and loss instead of wgpu's default, which panics.
fn watch_errors(device: &wgpu::Device, errors: &Arc<Mutex<DeviceErrors>>) {
    let sink = Arc::clone(errors);
    device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
        if let Ok(mut s) = sink.lock() {
            s.uncaptured.push(e.to_string());
        }
    }));
    let sink = Arc::clone(errors);
    device.set_device_lost_callback(move |reason, message| {
        if let Ok(mut s) = sink.lock() {
            s.lost = Some(format!("{reason:?}: {message}"));
        }
    });
}

/// `matmul_f16.wgsl`'s module: `enable f16;` must come before every declaration of the module.
const MATMUL_F16: &str = concat!(
    "enable f16;\n",
    include_str!("../../shaders/erf.wgsl"),
    include_str!("../../shaders/matmul_f16.wgsl"),
    include_str!("../../shaders/matmul.wgsl")
);

/// Whether every value is exactly an f16 (the weights of an f16 checkpoint, converted to f32 at
/// load): then f16 storage halves the bytes and changes no value.
fn exact_f16(values: &[f32]) -> bool {
    values.iter().all(|&v| half::f16::from_f32(v).to_f32() == v)
}

/// Compiles every kernel inside error scopes, so a shader the driver rejects is an error.
async fn compile(device: &wgpu::Device) -> std::result::Result<Kernels, String> {
    let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let pipeline = |name: &str, source: &str| {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(name),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(name),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        let layout = pipeline.get_bind_group_layout(0);
        (pipeline, layout)
    };
    let kernels = Kernels {
        embed: pipeline(
            "embed",
            concat!(
                include_str!("../../shaders/row_sum.wgsl"),
                include_str!("../../shaders/embed_f32.wgsl"),
                include_str!("../../shaders/embed.wgsl")
            ),
        ),
        embed_int8: pipeline(
            "embed_int8",
            concat!(
                include_str!("../../shaders/row_sum.wgsl"),
                include_str!("../../shaders/embed_int8.wgsl"),
                include_str!("../../shaders/embed.wgsl")
            ),
        ),
        embed_f16: pipeline(
            "embed_f16",
            concat!(
                include_str!("../../shaders/row_sum.wgsl"),
                include_str!("../../shaders/embed_f16.wgsl"),
                include_str!("../../shaders/embed.wgsl")
            ),
        ),
        matmul: pipeline(
            "matmul",
            concat!(
                include_str!("../../shaders/erf.wgsl"),
                include_str!("../../shaders/matmul_f32.wgsl"),
                include_str!("../../shaders/matmul.wgsl")
            ),
        ),
        matmul_int8: pipeline(
            "matmul_int8",
            concat!(
                include_str!("../../shaders/erf.wgsl"),
                include_str!("../../shaders/matmul_int8.wgsl"),
                include_str!("../../shaders/matmul.wgsl")
            ),
        ),
        matmul_f16: device.features().contains(wgpu::Features::SHADER_F16).then(|| pipeline("matmul_f16", MATMUL_F16)),
        attention: pipeline(
            "attention",
            concat!(include_str!("../../shaders/workgroup_reduce.wgsl"), include_str!("../../shaders/attention.wgsl")),
        ),
        add_layer_norm: pipeline(
            "add_layer_norm",
            concat!(include_str!("../../shaders/row_sum.wgsl"), include_str!("../../shaders/add_layer_norm.wgsl")),
        ),
    };
    if let Some(e) = validation.pop().await {
        return Err(format!("a compute shader was rejected: {e}"));
    }
    if let Some(e) = oom.pop().await {
        return Err(format!("out of memory compiling shaders: {e}"));
    }
    Ok(kernels)
}

/// int8 rows `[rows, cols]` packed four to a little-endian u32, each row padded to whole words,
/// as shaders/matmul_int8.wgsl and embed_int8.wgsl read them.
fn pack_int8_rows(q: &[i8], cols: usize) -> Vec<u32> {
    let words = cols.div_ceil(4);
    let mut packed = Vec::with_capacity(q.len() / cols.max(1) * words);
    for row in q.chunks_exact(cols.max(1)) {
        packed.extend(row.chunks(4).map(|b| {
            let mut word = [0u8; 4];
            word.iter_mut().zip(b).for_each(|(w, &v)| *w = v as u8);
            u32::from_le_bytes(word)
        }));
    }
    packed
}

fn groups(n: usize, per_group: u32) -> u32 {
    (n as u32).div_ceil(per_group)
}

fn contiguous(t: &GpuTensor, what: &str) -> Result<()> {
    if t.row_stride != t.cols {
        return Err(Error::Gpu(format!("{what} needs a contiguous tensor")));
    }
    Ok(())
}

impl Backend for GpuBackend {
    type Tensor = GpuTensor;
    type Input = GpuInput;

    fn name(&self) -> &'static str {
        "gpu"
    }

    fn load_tensor(&mut self, t: Tensor) -> Result<GpuTensor> {
        let t = t.joined(); // one buffer per weight (q | k | v copied together, freed after upload)
        let (rows, cols) = match t.shape[..] {
            [n] => (1, n),
            [r, c] => (r, c),
            _ => return Err(Error::Gpu(format!("cannot upload a tensor of shape {:?}", t.shape))),
        };
        let (buffer, packing) = match t.values() {
            Values::F32(values) => (self.upload("weight", bytemuck::cast_slice(values))?, Packing::F32),
            // An int8 Linear weight or word embedding: packed, with its scales beside it.
            Values::Int8 { q, scales } => {
                let packed = self.upload("int8 weight", bytemuck::cast_slice(&pack_int8_rows(q, cols)))?;
                let scales =
                    PooledBuffer { buffer: self.upload("int8 scales", bytemuck::cast_slice(scales))?, pool: None };
                (packed, Packing::Int8(Rc::new(scales)))
            }
            // An f16 word embedding, as stored (padded to whole u32 words).
            Values::F16(halves) => {
                let mut bytes = halves.to_vec();
                bytes.resize(halves.len().next_multiple_of(4), 0);
                (self.upload("f16 table", &bytes)?, Packing::F16)
            }
            Values::Stacked(_) | Values::Int8ByColumn { .. } => {
                return Err(Error::Gpu("a stacked or transposed tensor reached the upload".into()));
            }
        };
        Ok(GpuTensor { buffer: Rc::new(PooledBuffer { buffer, pool: None }), rows, cols, row_stride: cols, packing })
    }

    /// Linear weights stay [out, in] as in the checkpoint: matmul.wgsl reads them that way; int8
    /// ones stay int8 (see `load_tensor`); f16 ones (values that are all exactly f16) stay f16
    /// where the device has `shader-f16`.
    fn load_linear(&mut self, l: Linear) -> Result<Linear<GpuTensor>> {
        let l = Linear { weight: l.weight.joined(), bias: l.bias };
        let weight = match (l.weight.values(), &l.weight.shape[..]) {
            (Values::F32(values), &[rows, cols]) if self.kernels.matmul_f16.is_some() && exact_f16(values) => {
                let halves: Vec<u8> = values.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect();
                let buffer = PooledBuffer { buffer: self.upload("f16 weight", &halves)?, pool: None };
                GpuTensor { buffer: Rc::new(buffer), rows, cols, row_stride: cols, packing: Packing::F16 }
            }
            _ => self.load_tensor(l.weight)?,
        };
        Ok(Linear { weight, bias: self.load_tensor(l.bias)? })
    }

    /// The attention kernel holds a head's query in workgroup memory (its keys' scores a chunk at
    /// a time: any length fits).
    fn supports(&self, config: &Config, _max_tokens: usize) -> Result<()> {
        if config.head_dim() > MAX_HEAD_DIM {
            return Err(Error::Gpu(format!(
                "the GPU kernels take heads of at most {MAX_HEAD_DIM}; this model's are {}",
                config.head_dim()
            )));
        }
        Ok(())
    }

    /// A forward is some 45 dispatches and a readback: worth about 1024 rows of padding.
    fn padding_allowance(&self) -> usize {
        1024
    }

    /// Every activation, the widest being the FFN's [rows, hidden_dim] or the fused
    /// [rows, 3*dim] qkv, must fit one storage binding.
    fn max_rows(&self, config: &Config) -> usize {
        let widest = (3 * config.dim).max(config.hidden_dim).max(1) as u64 * 4;
        ((self.max_activation / widest) as usize).clamp(1, MAX_BATCH_ROWS)
    }

    fn upload_batch(&mut self, batch: &Batch) -> Result<GpuInput> {
        self.check_device()?;
        self.params.data.clear(); // a forward that failed midway left its parameters behind
        self.pass = None;
        // One compute pass for the whole forward: wgpu still orders the dispatches (barriers
        // between them), without a pass begun and ended per dispatch.
        let mut encoder =
            self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("forward") });
        let pass =
            encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("forward"), timestamp_writes: None });
        self.pass = Some(pass.forget_lifetime());
        self.encoder = Some(encoder);
        Ok(GpuInput {
            ids: self.input_buffer(&[&batch.ids[..], &batch.type_ids].concat())?,
            first_position: batch.first_position,
            key_bias: self.input_buffer(&batch.key_bias)?,
            batch: batch.batch,
            seq: batch.seq,
        })
    }

    /// embed.wgsl with the LayerNorm; with a projection (DeBERTa's `embed_proj`), the sum, the
    /// projection's matmul, then the LayerNorm.
    fn embed(&mut self, input: &GpuInput, emb: &Embeddings<GpuTensor>) -> Result<GpuTensor> {
        let (rows, width) = (input.batch * input.seq, emb.word_embeddings.cols);
        let out = self.alloc(rows, width)?;
        let eps = emb.layer_norm.eps.to_bits();
        let (positions, normalise) =
            (u32::from(emb.position_embeddings.is_some()), u32::from(emb.projection.is_none()));
        let params =
            [rows as u32, input.seq as u32, width as u32, eps, input.first_position as u32, positions, normalise, 0];
        // Without positions the binding holds the token-type table, which the kernel then never reads.
        let position = emb.position_embeddings.as_ref().unwrap_or(&emb.token_type_embeddings);
        let buffers = [
            &input.ids.buffer.buffer,
            &emb.word_embeddings.buffer.buffer,
            &position.buffer.buffer,
            &emb.token_type_embeddings.buffer.buffer,
            &emb.layer_norm.weight.buffer.buffer,
            &emb.layer_norm.bias.buffer.buffer,
            &out.buffer.buffer,
        ];
        match &emb.word_embeddings.packing {
            Packing::Int8(scales) => {
                self.dispatch_with(Kernel::EmbedInt8, &buffers, &params, &[&scales.buffer], [rows as u32, 1, 1])?
            }
            Packing::F16 => self.dispatch(Kernel::EmbedF16, &buffers, &params, [rows as u32, 1, 1])?,
            Packing::F32 => self.dispatch(Kernel::Embed, &buffers, &params, [rows as u32, 1, 1])?,
        }
        match &emb.projection {
            Some(projection) => {
                let projected = self.linear(&out, projection, None)?; // [rows, dim]
                self.layer_norm(&projected, &emb.layer_norm)
            }
            None => Ok(out),
        }
    }

    fn linear(&mut self, x: &GpuTensor, w: &Linear<GpuTensor>, act: Option<Activation>) -> Result<GpuTensor> {
        let (m, k, n) = (x.rows, x.cols, w.weight.rows);
        if w.weight.cols != k {
            return Err(Error::Gpu(format!("linear: input width {k}, weight expects {}", w.weight.cols)));
        }
        let out = self.alloc(m, n)?;
        let act = match act {
            None => 0,
            Some(Activation::Gelu) => 1,
            Some(Activation::Relu) => 2,
            Some(Activation::GeluTanh) => 3,
            Some(Activation::Tanh) => 4,
        };
        let params = [m as u32, n as u32, k as u32, x.row_stride as u32, act, 0, 0, 0];
        let buffers = [&x.buffer.buffer, &w.weight.buffer.buffer, &w.bias.buffer.buffer, &out.buffer.buffer];
        let grid = [groups(n, MATMUL_TILE), groups(m, MATMUL_TILE), 1];
        match &w.weight.packing {
            Packing::Int8(scales) => {
                self.dispatch_with(Kernel::MatmulInt8, &buffers, &params, &[&scales.buffer], grid)?
            }
            Packing::F16 => self.dispatch(Kernel::MatmulF16, &buffers, &params, grid)?,
            Packing::F32 => self.dispatch(Kernel::Matmul, &buffers, &params, grid)?,
        }
        Ok(out)
    }

    fn attention(
        &mut self,
        qkv: &GpuTensor,
        positions: Option<Positions<GpuTensor>>,
        input: &GpuInput,
        n_heads: usize,
        queries: Queries,
    ) -> Result<GpuTensor> {
        let (rows, dim) = (qkv.rows, qkv.cols / 3);
        let head_dim = dim / n_heads.max(1);
        let bad = rows != input.batch * input.seq || !qkv.cols.is_multiple_of(3) || n_heads == 0 || dim % n_heads != 0;
        if bad || head_dim > MAX_HEAD_DIM {
            return Err(Error::Gpu(format!(
                "attention: {rows}x{} qkv with {n_heads} heads is not supported",
                qkv.cols
            )));
        }
        contiguous(qkv, "attention")?;
        let nq = queries.per_sequence(input.seq);
        let out = self.alloc(input.batch * nq, dim)?;
        let relative = match positions {
            Some(p) => self.relative_params(p, input.seq, dim)?,
            // No relative terms: the kernel reads neither placeholder.
            None => ([0; 4], &qkv.buffer.buffer, &qkv.buffer.buffer),
        };
        let ([width, key, flags, row_zero], projected, rows) = relative;
        let scale = positions.map_or(1.0 / (head_dim as f32).sqrt(), |p| p.scale).to_bits();
        let sizes = [input.seq as u32, dim as u32, head_dim as u32, scale, nq as u32];
        let params = [&sizes[..], &[width, key, flags, row_zero, 0, 0, 0]].concat();
        let buffers = [&qkv.buffer.buffer, &input.key_bias.buffer.buffer, projected, rows, &out.buffer.buffer];
        self.dispatch(Kernel::Attention, &buffers, &params, [nq as u32, n_heads as u32, input.batch as u32])?;
        Ok(out)
    }

    fn add_layer_norm(&mut self, x: &GpuTensor, residual: &GpuTensor, ln: &LayerNorm<GpuTensor>) -> Result<GpuTensor> {
        if (x.rows, x.cols) != (residual.rows, residual.cols) {
            return Err(Error::Gpu("add_layer_norm: x and residual shapes differ".into()));
        }
        contiguous(x, "add_layer_norm")?;
        let out = self.alloc(x.rows, x.cols)?;
        let params = [x.rows as u32, x.cols as u32, ln.eps.to_bits(), residual.row_stride as u32, 1, 0, 0, 0];
        let buffers = [
            &x.buffer.buffer,
            &residual.buffer.buffer,
            &ln.weight.buffer.buffer,
            &ln.bias.buffer.buffer,
            &out.buffer.buffer,
        ];
        self.dispatch(Kernel::AddLayerNorm, &buffers, &params, [x.rows as u32, 1, 1])?;
        Ok(out)
    }

    /// add_layer_norm.wgsl without its residual (x bound in its place, unread).
    fn layer_norm(&mut self, x: &GpuTensor, ln: &LayerNorm<GpuTensor>) -> Result<GpuTensor> {
        contiguous(x, "layer_norm")?;
        let out = self.alloc(x.rows, x.cols)?;
        let params = [x.rows as u32, x.cols as u32, ln.eps.to_bits(), x.cols as u32, 0, 0, 0, 0];
        let buffers =
            [&x.buffer.buffer, &x.buffer.buffer, &ln.weight.buffer.buffer, &ln.bias.buffer.buffer, &out.buffer.buffer];
        self.dispatch(Kernel::AddLayerNorm, &buffers, &params, [x.rows as u32, 1, 1])?;
        Ok(out)
    }

    /// A strided view (every `seq`-th row), no copy: add_layer_norm reads its residual's rows
    /// `residual_stride` apart, matmul its input's `a_row_stride` apart.
    fn cls_rows(&mut self, x: &GpuTensor, input: &GpuInput) -> Result<GpuTensor> {
        contiguous(x, "cls_rows")?;
        let (buffer, rows, cols) = (Rc::clone(&x.buffer), input.batch, x.cols);
        Ok(GpuTensor { buffer, rows, cols, row_stride: input.seq * x.cols, packing: Packing::F32 })
    }

    async fn read(&mut self, t: &GpuTensor) -> Result<Vec<f32>> {
        let data = self.submit_and_read(t).await?;
        Ok(data.chunks(t.row_stride).take(t.rows).flat_map(|row| &row[..t.cols]).copied().collect())
    }
}
