//! The browser binding, and the only module that uses `wasm_bindgen`: an opaque classifier built
//! from a model folder's bytes, `classify`, and the backend in use. Errors become JS exceptions
//! carrying our message. Everything else (fetching, caching, the worker, UI) is JavaScript.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use wasm_bindgen::prelude::*;

use crate::backend::gpu::{GpuBackend, GpuOptions};
use crate::convert::{WeightFormat, convert};
use crate::explain::ExplainJob;
use crate::{Checkpoint, Classification, CpuBackend, ModelFiles, Options, ZeroShotClassifier};

/// `initThreadPool(n)` (threads build): starts rayon's pool of `n` Web Workers sharing this
/// instance's memory. JS calls it once, before `loadClassifier(.., threads = n)`, and only where
/// the page is cross-origin isolated (the memory must be posted to the workers).
#[cfg(feature = "threads")]
pub use wasm_bindgen_rayon::init_thread_pool;

/// A classifier on whichever backend was chosen.
#[allow(clippy::large_enum_variant)]
enum Inner {
    Cpu(ZeroShotClassifier<CpuBackend>),
    Gpu(ZeroShotClassifier<GpuBackend>),
}

/// A loaded model. Calls must not overlap (the JS worker queues them).
#[wasm_bindgen]
pub struct Classifier {
    inner: Rc<RefCell<Inner>>,
    backend: &'static str,
}

fn js_error(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// A model.safetensors in wasm memory, filled by the page's worker through a view at `ptr()` as
/// the download (or the kept copy) arrives: the file is held once, here, not also as a JS copy
/// that would then be copied in. `loadClassifier` takes it over.
#[wasm_bindgen]
pub struct WeightsBuffer {
    bytes: Vec<u8>,
    /// SHA-256 of `bytes[..hashed]`, fed as the download arrives (`hashTo`).
    hasher: sha2::Sha256,
    hashed: usize,
}

#[wasm_bindgen]
impl WeightsBuffer {
    /// `size` zeroed bytes; an error, not a trap, when wasm memory cannot hold them.
    #[wasm_bindgen(constructor)]
    pub fn new(size: usize) -> Result<WeightsBuffer, JsError> {
        let mut buffer = WeightsBuffer::from(Vec::new());
        buffer.resize(size)?;
        Ok(buffer)
    }

    /// Where the bytes start in wasm memory (it moves when `resize` grows the buffer).
    pub fn ptr(&self) -> usize {
        self.bytes.as_ptr() as usize
    }

    /// The number of bytes.
    pub fn size(&self) -> usize {
        self.bytes.len()
    }

    /// Grows (new bytes zeroed) or cuts to `size`: for a download whose size was not announced.
    pub fn resize(&mut self, size: usize) -> Result<(), JsError> {
        let more = size.saturating_sub(self.bytes.len());
        if self.bytes.try_reserve_exact(more).is_err() {
            return Err(JsError::new(&format!("wasm memory cannot hold {size} bytes of model.safetensors")));
        }
        self.bytes.resize(size, 0);
        if size < self.hashed {
            // Bytes already hashed are cut: start the hash again.
            (self.hasher, self.hashed) = (sha2::Sha256::default(), 0);
        }
        Ok(())
    }

    /// Hashes the bytes up to `end` not hashed yet. The worker calls it as the download arrives, so
    /// the hash (about 60 MB/s in wasm) runs while the network delivers, not after it.
    #[wasm_bindgen(js_name = hashTo)]
    pub fn hash_to(&mut self, end: usize) {
        use sha2::Digest;
        let end = end.min(self.bytes.len());
        if end > self.hashed {
            self.hasher.update(&self.bytes[self.hashed..end]);
            self.hashed = end;
        }
    }

    /// SHA-256 of all the bytes, lowercase hex: the Hub's X-Linked-Etag is checked here, with no JS
    /// copy of them (WebCrypto cannot read wasm's shared memory).
    pub fn sha256(&mut self) -> String {
        use sha2::Digest;
        self.hash_to(self.bytes.len());
        self.hasher.clone().finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl From<Vec<u8>> for WeightsBuffer {
    fn from(bytes: Vec<u8>) -> Self {
        WeightsBuffer { bytes, hasher: sha2::Sha256::default(), hashed: 0 }
    }
}

/// Builds a classifier from the files of a model folder, the weights taken over from `weights`.
/// `backend` is "webgpu" or "cpu" (the JS side resolves "auto", since only it can see whether the
/// adapter is a fallback one); with `cpu_fallback`, a WebGPU build that fails is built again on
/// the CPU from the same bytes. `threads` is the CPU's thread count (the size of the pool
/// `initThreadPool` started; 1 without it). The GPU path frees the bytes after upload.
#[wasm_bindgen(js_name = loadClassifier)]
#[allow(clippy::too_many_arguments)]
pub async fn load_classifier(
    config_json: Vec<u8>,
    weights: WeightsBuffer,
    tokenizer_json: Option<Vec<u8>>,
    vocab_txt: Option<Vec<u8>>,
    vocab_json: Option<Vec<u8>>,
    merges_txt: Option<Vec<u8>>,
    tokenizer_config_json: Option<Vec<u8>>,
    backend: String,
    cpu_fallback: bool,
    threads: usize,
) -> Result<Classifier, JsError> {
    let files = ModelFiles {
        config_json,
        model_safetensors: Arc::new(weights.bytes),
        tokenizer_json,
        vocab_txt,
        vocab_json,
        merges_txt,
        tokenizer_config_json,
    };
    let inner = match backend.as_str() {
        "cpu" => cpu_classifier(files, threads)?,
        // The clone shares the bytes (an Arc): they are read again only if the GPU fails.
        "webgpu" => match gpu_classifier(files.clone()).await {
            Err(_) if cpu_fallback => cpu_classifier(files, threads)?,
            built => built?,
        },
        other => return Err(JsError::new(&format!("unknown backend {other:?}: use \"webgpu\" or \"cpu\""))),
    };
    let backend = if matches!(inner, Inner::Cpu(_)) { "cpu" } else { "webgpu" };
    Ok(Classifier { inner: Rc::new(RefCell::new(inner)), backend })
}

fn cpu_classifier(files: ModelFiles, threads: usize) -> Result<Inner, JsError> {
    let checkpoint = Checkpoint::load(files).map_err(js_error)?;
    Ok(Inner::Cpu(ZeroShotClassifier::new(checkpoint, CpuBackend::new(threads)).map_err(js_error)?))
}

async fn gpu_classifier(files: ModelFiles) -> Result<Inner, JsError> {
    let checkpoint = Checkpoint::load(files).map_err(js_error)?;
    let options = GpuOptions { allow_software: true, ..Default::default() };
    let gpu = GpuBackend::new(options).await.map_err(js_error)?;
    let mut c = ZeroShotClassifier::new(checkpoint, gpu).map_err(js_error)?;
    c.warm_up().await.map_err(js_error)?;
    Ok(Inner::Gpu(c))
}

/// Runs the CPU's matmul kernel on small zero operands so the browser compiles it with its
/// optimising tier before the first text (see `dot::warm_up`); the worker calls it while the
/// model downloads.
#[wasm_bindgen(js_name = warmUpKernels)]
pub fn warm_up_kernels() {
    crate::backend::dot::warm_up();
}

/// `weights` as `format` ("f16" or "int8"), as `zeroshot convert` writes them: the page keeps the
/// smaller copy of an fp32 download (`ZeroShotClassifier.load({convert})`).
#[wasm_bindgen(js_name = convertWeights)]
pub fn convert_weights(weights: &WeightsBuffer, format: &str) -> Result<WeightsBuffer, JsError> {
    let bytes = convert(&weights.bytes, WeightFormat::parse(format).map_err(js_error)?).map_err(js_error)?;
    Ok(WeightsBuffer::from(bytes))
}

#[wasm_bindgen]
impl Classifier {
    /// "webgpu" or "cpu": what actually runs.
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        self.backend.to_string()
    }

    /// Classifies `text`; resolves to the JSON of `{sequence, labels, scores, truncated}`.
    pub fn classify(&self, text: String, labels: Vec<String>, template: String, multi_label: bool) -> js_sys::Promise {
        let inner = Rc::clone(&self.inner);
        wasm_bindgen_futures::future_to_promise(async move {
            let options = Options { hypothesis_template: template, multi_label };
            let mut results = run_batch(&inner, &[text], &labels, &options).await?;
            let result = results.pop().ok_or_else(|| js_error("no result"))?.map_err(js_error)?;
            Ok(JsValue::from_str(&serde_json::to_string(&result).map_err(js_error)?))
        })
    }

    /// Classifies several texts, their pairs sharing forwards; resolves to the JSON of one entry
    /// per text, in order: `{"ok": {sequence, labels, scores, truncated}}` or `{"error": "..."}`.
    /// A problem they share (no labels, a bad template, a lost GPU) rejects the whole call.
    #[wasm_bindgen(js_name = classifyBatch)]
    pub fn classify_batch(
        &self,
        texts: Vec<String>,
        labels: Vec<String>,
        template: String,
        multi_label: bool,
    ) -> js_sys::Promise {
        let inner = Rc::clone(&self.inner);
        wasm_bindgen_futures::future_to_promise(async move {
            let options = Options { hypothesis_template: template, multi_label };
            let results = run_batch(&inner, &texts, &labels, &options).await?;
            let entries: Vec<serde_json::Value> = results
                .into_iter()
                .map(|r| match r {
                    Ok(c) => serde_json::json!({ "ok": c }),
                    Err(e) => serde_json::json!({ "error": e.to_string() }),
                })
                .collect();
            Ok(JsValue::from_str(&serde_json::to_string(&entries).map_err(js_error)?))
        })
    }

    /// An explanation of `text` (each word's effect on each label: see `crate::explain`), to run
    /// with `step` until it resolves true, then read with `result`.
    pub fn explainer(
        &self,
        text: String,
        labels: Vec<String>,
        template: String,
        multi_label: bool,
    ) -> Result<Explainer, JsError> {
        let options = Options { hypothesis_template: template, multi_label };
        let inner = self.inner.try_borrow().map_err(|_| js_error("a classify call is already running"))?;
        let job = match &*inner {
            Inner::Cpu(c) => c.explain_job(&text, &labels, &options),
            Inner::Gpu(c) => c.explain_job(&text, &labels, &options),
        };
        let job = Rc::new(RefCell::new(job.map_err(js_error)?));
        Ok(Explainer { inner: Rc::clone(&self.inner), job })
    }

    /// Test hooks, for the browser tests of recovery only: "trap" executes `unreachable` (a wasm
    /// trap, as a bug would); "lose-device" destroys the GPU device right after the next forward
    /// is submitted (the call in flight then sees a lost device).
    #[wasm_bindgen(js_name = testHook)]
    pub fn test_hook(&self, action: &str) -> Result<(), JsError> {
        match action {
            "trap" => core::arch::wasm32::unreachable(),
            "lose-device" => match &mut *self.inner.try_borrow_mut().map_err(|_| js_error("a call is running"))? {
                Inner::Gpu(c) => {
                    c.backend_mut().lose_device_in_next_read();
                    Ok(())
                }
                Inner::Cpu(_) => Err(js_error("lose-device: this classifier runs on the CPU")),
            },
            other => Err(JsError::new(&format!("unknown test hook {other:?}"))),
        }
    }
}

/// An explanation in progress (`Classifier::explainer`): run in steps of a bounded number of token
/// rows, so that the worker reports progress, and can stop, between them.
#[wasm_bindgen]
pub struct Explainer {
    inner: Rc<RefCell<Inner>>,
    job: Rc<RefCell<ExplainJob>>,
}

#[wasm_bindgen]
impl Explainer {
    /// Pairs run so far.
    pub fn done(&self) -> usize {
        self.job.borrow().progress().0
    }

    /// Pairs in all: the classification's, and one per word and label whose pair holds it.
    pub fn total(&self) -> usize {
        self.job.borrow().progress().1
    }

    /// Runs the next pairs, up to `max_rows` token rows; resolves to whether every pair has run.
    pub fn step(&self, max_rows: usize) -> js_sys::Promise {
        let (inner, job) = (Rc::clone(&self.inner), Rc::clone(&self.job));
        wasm_bindgen_futures::future_to_promise(async move {
            let done = explain_step(&inner, &job, max_rows).await?;
            Ok(JsValue::from_bool(done))
        })
    }

    /// The JSON of `{sequence, labels, scores, words: [{text, start, end, effects}], truncated}`
    /// (start and end in chars), once every pair has run.
    pub fn result(&self) -> Result<String, JsError> {
        let inner = self.inner.try_borrow().map_err(|_| js_error("a classify call is running"))?;
        let mut job = self.job.try_borrow_mut().map_err(js_error)?;
        if !job.is_done() {
            return Err(js_error("the explanation has pairs left to run: step until it resolves true"));
        }
        let job = std::mem::replace(&mut *job, ExplainJob::empty());
        let explanation = match &*inner {
            Inner::Cpu(c) => c.explain_result(job),
            Inner::Gpu(c) => c.explain_result(job),
        };
        serde_json::to_string(&explanation.map_err(js_error)?).map_err(js_error)
    }
}

/// One explanation step on whichever backend holds the model (see `run_batch` on the borrow).
#[allow(clippy::await_holding_refcell_ref)]
async fn explain_step(inner: &RefCell<Inner>, job: &RefCell<ExplainJob>, max_rows: usize) -> Result<bool, JsError> {
    let mut inner = inner.try_borrow_mut().map_err(|_| js_error("a classify call is already running"))?;
    let mut job = job.try_borrow_mut().map_err(|_| js_error("this explanation's step is already running"))?;
    let job: &mut ExplainJob = &mut job;
    let done = match &mut *inner {
        Inner::Cpu(c) => on_pool(c.backend().threads(), || ready(c.explain_step(job, max_rows))),
        Inner::Gpu(c) => c.explain_step(job, max_rows).await,
    };
    done.map_err(js_error)
}

/// One batch on whichever backend holds the model.
// The borrow spans the forward's awaits on purpose: an overlapping call gets an error, not
// interleaved GPU work (wasm is single-threaded, so nothing else can be waiting on it).
#[allow(clippy::await_holding_refcell_ref)]
async fn run_batch(
    inner: &RefCell<Inner>,
    texts: &[String],
    labels: &[String],
    options: &Options,
) -> Result<Vec<crate::Result<Classification>>, JsError> {
    let mut inner = inner.try_borrow_mut().map_err(|_| js_error("a classify call is already running"))?;
    let results = match &mut *inner {
        Inner::Cpu(c) => on_pool(c.backend().threads(), || ready(c.classify_batch(texts, labels, options))),
        Inner::Gpu(c) => c.classify_batch(texts, labels, options).await,
    };
    results.map_err(js_error)
}

/// Runs `f` on one of the pool's threads where the CPU has several (the threads build), else
/// here. Run on the worker that called in, which would otherwise only wait, each matmul would
/// wake a pool thread to start it and wake the worker to end it, ~0.2 ms per matmul (profiled in
/// Chromium). The other threads stay awake until `f` returns, taking work the moment a step
/// splits it, rather than sleeping between steps (a forward has ~40 parallel steps, each of which
/// would begin by waking them): 0.96-0.985x the time of a call with sleeping threads, at 2
/// threads (full-size model, one text x 5 labels, Chromium 156, both ways interleaved in one
/// page). They spin only during a call.
fn on_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    #[cfg(feature = "threads")]
    if threads > 1 {
        use std::sync::atomic::{AtomicBool, Ordering};
        let done = AtomicBool::new(false);
        return rayon::scope(|s| {
            let (caller, done) = (rayon::current_thread_index(), &done);
            for _ in 1..threads {
                s.spawn(move |_| {
                    // Never on the thread running `f` (it would wait for `f`, under it).
                    while rayon::current_thread_index() != caller && !done.load(Ordering::Acquire) {
                        if rayon::yield_now() != Some(rayon::Yield::Executed) {
                            std::hint::spin_loop();
                        }
                    }
                });
            }
            let r = f();
            done.store(true, Ordering::Release);
            r
        });
    }
    let _ = threads;
    f()
}

/// The CPU forward's result: its future never waits (`Backend::read` on the CPU returns at once),
/// so one poll ends it; an error, not a hang, if that ever changes.
fn ready<T>(f: impl std::future::Future<Output = crate::Result<T>>) -> crate::Result<T> {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
        std::task::Poll::Ready(r) => r,
        std::task::Poll::Pending => Err(crate::Error::Backend("the CPU forward waited for something".into())),
    }
}
