//! Opt-in: typeform's exact shapes (268 MB of random weights, made by
//! `tests/fixtures/generate.py --full-size`, not committed) against transformers, same tolerances.
//!
//! ```sh
//! .venv/bin/python tests/fixtures/generate.py --full-size
//! cargo test --release --test full_size -- --ignored --nocapture
//! ```
//! `ZEROSHOT_FULL_SIZE=DIR` points at another folder.

mod common;

use std::path::PathBuf;

use common::check_pipeline;
use zeroshot::backend::Backend;
use zeroshot::backend::gpu::GpuOptions;
use zeroshot::{Checkpoint, CpuBackend, ZeroShotClassifier};

fn full_size_dir() -> PathBuf {
    std::env::var_os("ZEROSHOT_FULL_SIZE").map(PathBuf::from).unwrap_or_else(|| common::fixture_dir("full-size"))
}

#[test]
#[ignore = "needs the 268 MB model from generate.py --full-size"]
fn full_size_cpu_matches_transformers() {
    check_full_size(CpuBackend::default());
}

/// Meant for a hardware GPU; on lavapipe it takes many minutes.
#[test]
#[ignore = "needs the 268 MB model from generate.py --full-size, and a GPU"]
fn full_size_gpu_matches_transformers() {
    let Some(gpu) = common::gpu_backend(GpuOptions::default()) else { return };
    check_full_size(gpu);
}

/// Every case of the folder's reference.json on `backend`, with the fixtures' tolerances.
fn check_full_size<B: Backend>(backend: B) {
    let dir = full_size_dir();
    let reference: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("reference.json")).expect("reference.json")).unwrap();
    let started = std::time::Instant::now();
    let checkpoint = Checkpoint::from_dir(&dir).unwrap();
    let tokenizer = Checkpoint::from_dir(&dir).unwrap().tokenizer;
    assert_eq!(checkpoint.config.dim, 768);
    let mut classifier = ZeroShotClassifier::new(checkpoint, backend).unwrap();
    let name = classifier.backend_name();
    let parity = check_pipeline(&mut classifier, &tokenizer, &reference);
    let cases = reference["pipeline"].as_array().unwrap().len();
    println!(
        "full size ({name}): {cases} cases in {:.1} s, max logit error {:.2e}, max score error {:.2e}",
        started.elapsed().as_secs_f64(),
        parity.max_logit_err,
        parity.max_score_err
    );
    assert!(parity.failures.is_empty(), "{} mismatches:\n{}", parity.failures.len(), parity.failures.join("\n"));
}
