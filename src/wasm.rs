//! The browser binding, and the only module that uses `wasm_bindgen`: an opaque classifier built
//! from a model folder's bytes, `classify`, and the backend in use. Errors become JS exceptions
//! carrying our message. Everything else (fetching, caching, the worker, UI) is JavaScript.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use wasm_bindgen::prelude::*;

use crate::backend::gpu::{GpuBackend, GpuOptions};
use crate::convert::{WeightFormat, convert};
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

/// Builds a classifier from the files of a model folder. `backend` is "webgpu" or "cpu" (the JS
/// side resolves "auto", since only it can see whether the adapter is a fallback one); `threads`
/// is the CPU's thread count (the size of the pool `initThreadPool` started; 1 without it). The
/// weights' bytes move into wasm memory once; the GPU path frees them after upload.
#[wasm_bindgen(js_name = loadClassifier)]
pub async fn load_classifier(
    config_json: Vec<u8>,
    model_safetensors: Vec<u8>,
    tokenizer_json: Option<Vec<u8>>,
    vocab_txt: Option<Vec<u8>>,
    tokenizer_config_json: Option<Vec<u8>>,
    backend: String,
    threads: usize,
) -> Result<Classifier, JsError> {
    let files = ModelFiles {
        config_json,
        model_safetensors: Arc::new(model_safetensors),
        tokenizer_json,
        vocab_txt,
        tokenizer_config_json,
    };
    let checkpoint = Checkpoint::load(files).map_err(js_error)?;
    let inner = match backend.as_str() {
        "cpu" => Inner::Cpu(ZeroShotClassifier::new(checkpoint, CpuBackend::new(threads)).map_err(js_error)?),
        "webgpu" => {
            let options = GpuOptions { allow_software: true, ..Default::default() };
            let gpu = GpuBackend::new(options).await.map_err(js_error)?;
            let mut c = ZeroShotClassifier::new(checkpoint, gpu).map_err(js_error)?;
            c.warm_up().await.map_err(js_error)?;
            Inner::Gpu(c)
        }
        other => return Err(JsError::new(&format!("unknown backend {other:?}: use \"webgpu\" or \"cpu\""))),
    };
    let backend = if matches!(inner, Inner::Cpu(_)) { "cpu" } else { "webgpu" };
    Ok(Classifier { inner: Rc::new(RefCell::new(inner)), backend })
}

/// `model.safetensors` bytes as `format` ("f16" or "int8"), as `zeroshot convert` writes them: the
/// page keeps the smaller copy of an fp32 download (`ZeroShotClassifier.load({convert})`).
#[wasm_bindgen(js_name = convertWeights)]
pub fn convert_weights(model_safetensors: &[u8], format: &str) -> Result<Vec<u8>, JsError> {
    convert(model_safetensors, WeightFormat::parse(format).map_err(js_error)?).map_err(js_error)
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
        Inner::Cpu(c) => c.classify_batch(texts, labels, options).await,
        Inner::Gpu(c) => c.classify_batch(texts, labels, options).await,
    };
    results.map_err(js_error)
}
