//! Helpers shared by the integration tests: fixture paths, reference records, file surgery.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;
use zeroshot::ModelFiles;

/// The committed fixture checkpoints (see tests/fixtures/generate.py): DistilBERTs, then one
/// BERT, two RoBERTas, an XLM-R and three DeBERTa-v2/v3s. `typeform-layout-{int8,f16}` are
/// `typeform-layout` through `zeroshot convert`; their references are transformers' outputs on
/// the weights torch itself dequantised from those files (`generate.py --quantised`).
pub const FIXTURES: [&str; 12] = [
    "typeform-layout",
    "tokenizer-json",
    "f16-relu",
    "typeform-layout-int8",
    "typeform-layout-f16",
    "bert-vocab",
    "roberta-bpe",
    "roberta-json",
    "xlmr-unigram",
    "deberta-v3",
    "deberta-v2-abs",
    "deberta-c2p",
];

pub fn fixture_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// transformers' outputs for one fixture.
pub fn reference(name: &str) -> Value {
    let path = fixture_dir(&format!("{name}.reference.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("reference JSON")
}

pub fn files(name: &str) -> ModelFiles {
    ModelFiles::from_dir(&fixture_dir(name)).expect("fixture loads")
}

/// A JSON document with `edit` applied, as bytes.
pub fn edit_json(bytes: &[u8], edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut value: Value = serde_json::from_slice(bytes).expect("JSON");
    edit(&mut value);
    serde_json::to_vec(&value).expect("JSON")
}

/// A tensor as it goes into a rewritten safetensors file.
pub struct RawTensor {
    pub dtype: safetensors::Dtype,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl safetensors::View for &RawTensor {
    fn dtype(&self) -> safetensors::Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        (&self.data[..]).into()
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

/// Rewrites a safetensors file: `edit` may rename, change or drop tensors, or add new ones.
pub fn rewrite_safetensors(bytes: &[u8], edit: impl FnOnce(&mut Vec<(String, RawTensor)>)) -> Arc<Vec<u8>> {
    let file = safetensors::SafeTensors::deserialize(bytes).expect("safetensors");
    let mut tensors: Vec<(String, RawTensor)> = file
        .tensors()
        .into_iter()
        .map(|(name, v)| (name, RawTensor { dtype: v.dtype(), shape: v.shape().to_vec(), data: v.data().to_vec() }))
        .collect();
    edit(&mut tensors);
    let views: Vec<(String, &RawTensor)> = tensors.iter().map(|(n, t)| (n.clone(), t)).collect();
    Arc::new(safetensors::serialize(views, None).expect("serialize"))
}

/// Logits within `1e-4 * max(1, |ref|)` (the model issue's tolerance).
pub const LOGIT_TOL: f64 = 1e-4;
/// Scores within this, absolute.
pub const SCORE_TOL: f64 = 5e-5;
/// Label order must match wherever neighbouring reference scores differ by more than this.
pub const ORDER_GAP: f64 = 1e-4;

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().expect("array").iter().map(|x| x.as_f64().expect("number")).collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().expect("array").iter().map(|x| x.as_str().expect("string").to_string()).collect()
}

/// What [`check_pipeline`] found.
#[derive(Default)]
pub struct Parity {
    /// One line per mismatch (empty when all agree).
    pub failures: Vec<String>,
    /// Largest `|actual - expected| / max(1, |expected|)` over all logits.
    pub max_logit_err: f64,
    /// Largest `|actual - expected|` over all scores.
    pub max_score_err: f64,
}

/// Runs every pipeline record of `reference` through `classifier`, comparing logits, scores and
/// label order with transformers'.
pub fn check_pipeline<B: zeroshot::backend::Backend>(
    classifier: &mut zeroshot::ZeroShotClassifier<B>,
    tokenizer: &zeroshot::NliTokenizer,
    reference: &Value,
) -> Parity {
    let mut parity = Parity::default();
    let failures = &mut parity.failures;
    for (case_no, case) in reference["pipeline"].as_array().expect("pipeline").iter().enumerate() {
        let (text, labels) = (case["text"].as_str().unwrap(), strings(&case["labels"]));
        let options = zeroshot::Options {
            hypothesis_template: case["template"].as_str().unwrap().to_string(),
            multi_label: case["multi_label"].as_bool().unwrap(),
        };
        let encodings: Vec<_> = labels
            .iter()
            .map(|l| {
                tokenizer
                    .encode_pair(text, &zeroshot::pipeline::hypothesis(&options.hypothesis_template, l).unwrap())
                    .unwrap()
            })
            .collect();
        let logits = pollster::block_on(classifier.logits(&encodings)).expect("logits");
        for (pair, (got, want)) in logits.iter().zip(case["logits"].as_array().unwrap()).enumerate() {
            for (i, (&g, w)) in got.iter().zip(floats(want)).enumerate() {
                let err = (g as f64 - w).abs() / w.abs().max(1.0);
                parity.max_logit_err = parity.max_logit_err.max(err);
                if err > LOGIT_TOL {
                    failures.push(format!("case {case_no} pair {pair} logit {i}: actual {g}, expected {w}"));
                }
            }
        }
        let result = pollster::block_on(classifier.classify(text, &labels, &options)).expect("classify");
        let expected = &case["expected"];
        let (want_labels, want_scores) = (strings(&expected["labels"]), floats(&expected["scores"]));
        for (i, (g, w)) in result.scores.iter().zip(&want_scores).enumerate() {
            parity.max_score_err = parity.max_score_err.max((g - w).abs());
            if (g - w).abs() > SCORE_TOL {
                failures.push(format!("case {case_no} score {i}: actual {g}, expected {w}"));
            }
        }
        // Exact ties (labels that tokenize alike) must come in transformers' order too (numpy's
        // argsort sorts up to 16 values by insertion: reverse input order after the pipeline's
        // reversal); only near-ties, closer than ORDER_GAP but not equal, may swap. Above 16
        // labels numpy's introsort leaves the order of ties unspecified.
        let small = want_labels.len() <= 16;
        let clear = |a: f64, b: f64| (a == b && small) || (a - b).abs() > ORDER_GAP;
        for i in 0..want_labels.len() {
            let before = i == 0 || clear(want_scores[i - 1], want_scores[i]);
            let after = i + 1 == want_labels.len() || clear(want_scores[i], want_scores[i + 1]);
            if before && after && result.labels[i] != want_labels[i] {
                failures.push(format!(
                    "case {case_no} rank {i}: actual {:?}, expected {:?}",
                    result.labels[i], want_labels[i]
                ));
            }
        }
        if result.sequence != expected["sequence"].as_str().unwrap() {
            failures.push(format!("case {case_no}: sequence differs"));
        }
    }
    parity
}

/// A GPU backend for tests, on any adapter (lavapipe and SwiftShader included). Without one the
/// test is skipped with a message, unless ZEROSHOT_REQUIRE_GPU=1 (CI sets it), which fails it.
pub fn gpu_backend(options: zeroshot::backend::gpu::GpuOptions) -> Option<zeroshot::backend::gpu::GpuBackend> {
    let options = zeroshot::backend::gpu::GpuOptions { allow_software: true, ..options };
    match pollster::block_on(zeroshot::backend::gpu::GpuBackend::new(options)) {
        Ok(gpu) => Some(gpu),
        Err(e) if std::env::var("ZEROSHOT_REQUIRE_GPU").as_deref() == Ok("1") => {
            panic!("ZEROSHOT_REQUIRE_GPU=1 but no GPU backend: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED: no GPU adapter ({e}); install mesa-vulkan-drivers for lavapipe");
            None
        }
    }
}

/// Asserts `actual` is within `tol * max(1, |expected|)` of `expected` everywhere, naming the
/// first failing index with both values.
pub fn assert_close(what: &str, actual: &[f32], expected: &[f32], tol: f32) {
    assert_eq!(actual.len(), expected.len(), "{what}: lengths differ");
    let mut worst = (0.0f32, 0usize);
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        let err = (a - e).abs() / e.abs().max(1.0);
        assert!(err <= tol && a.is_finite(), "{what}: index {i}: actual {a}, expected {e} (tolerance {tol})");
        if err > worst.0 {
            worst = (err, i);
        }
    }
    println!("{what}: {} values, worst relative error {:.2e} at {}", actual.len(), worst.0, worst.1);
}
