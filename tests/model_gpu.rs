//! The whole model on the GPU (lavapipe in CI) against transformers, with the CPU's tolerances,
//! and batch splitting under deliberately lowered device limits.

mod common;

use common::{FIXTURES, check_pipeline, files, gpu_backend, reference};
use zeroshot::backend::gpu::GpuOptions;
use zeroshot::pipeline::hypothesis;
use zeroshot::{Checkpoint, CpuBackend, ZeroShotClassifier};

#[test]
fn gpu_matches_transformers_on_every_fixture() {
    for name in FIXTURES {
        let Some(gpu) = gpu_backend(GpuOptions::default()) else { return };
        let checkpoint = Checkpoint::load(files(name)).unwrap();
        let tokenizer = Checkpoint::load(files(name)).unwrap().tokenizer;
        let mut classifier = ZeroShotClassifier::new(checkpoint, gpu).unwrap();
        assert_eq!(classifier.backend_name(), "gpu");
        let parity = check_pipeline(&mut classifier, &tokenizer, &reference(name));
        println!(
            "{name} (gpu): max logit error {:.2e}, max score error {:.2e}",
            parity.max_logit_err, parity.max_score_err
        );
        assert!(parity.failures.is_empty(), "{name} (gpu):\n{}", parity.failures.join("\n"));
    }
}

#[test]
fn batches_split_to_fit_a_small_binding_limit() {
    // typeform-layout: the fused qkv is 3 x 16 = 48 wide (FFN 40); 48 * 4 * 600 bytes holds one
    // 512-token sequence per forward.
    let Some(gpu) = gpu_backend(GpuOptions { max_activation_bytes: Some(48 * 4 * 600), ..Default::default() }) else {
        return;
    };
    let mut small = ZeroShotClassifier::new(Checkpoint::load(files("typeform-layout")).unwrap(), gpu).unwrap();
    let mut cpu =
        ZeroShotClassifier::new(Checkpoint::load(files("typeform-layout")).unwrap(), CpuBackend::new(1)).unwrap();
    let tok = Checkpoint::load(files("typeform-layout")).unwrap().tokenizer;
    let text = "A long text about roads, budgets and meetings. ".repeat(60);
    let encodings: Vec<_> = ["roads", "money", "sport"]
        .iter()
        .map(|l| tok.encode_pair(&text, &hypothesis("This is {}.", l).unwrap()).unwrap())
        .collect();
    assert!(encodings.iter().all(|e| e.ids.len() == 512));
    let got = pollster::block_on(small.logits(&encodings)).expect("three forwards of one sequence each");
    let want = pollster::block_on(cpu.logits(&encodings)).unwrap();
    for (g, w) in got.iter().flatten().zip(want.iter().flatten()) {
        assert!((g - w).abs() <= 1e-4 * w.abs().max(1.0), "actual {g}, expected {w}");
    }
}

#[test]
fn an_activation_over_the_limit_is_an_error_not_a_crash() {
    // Not even one 512-token sequence fits: a clear error, and the backend still works after.
    let Some(gpu) = gpu_backend(GpuOptions { max_activation_bytes: Some(40 * 4 * 100), ..Default::default() }) else {
        return;
    };
    let mut c = ZeroShotClassifier::new(Checkpoint::load(files("typeform-layout")).unwrap(), gpu).unwrap();
    let labels = vec!["a".to_string(), "b".to_string()];
    let long = "word ".repeat(600);
    let err = pollster::block_on(c.classify(&long, &labels, &Default::default())).unwrap_err().to_string();
    assert!(err.contains("over the device's"), "{err}");
    let ok = pollster::block_on(c.classify("short", &labels, &Default::default())).unwrap();
    assert_eq!(ok.labels.len(), 2);
}

#[test]
fn the_activation_pool_stays_bounded_over_texts_of_every_length() {
    let Some(gpu) = gpu_backend(GpuOptions::default()) else {
        return;
    };
    let mut c = ZeroShotClassifier::new(Checkpoint::load(files("typeform-layout")).unwrap(), gpu).unwrap();
    let labels = vec!["a".to_string(), "b".to_string(), "c".to_string()];
    let mut classes_seen = Vec::new();
    for words in (1..400).step_by(7) {
        let text = "word ".repeat(words);
        pollster::block_on(c.classify(&text, &labels, &Default::default())).unwrap();
        classes_seen.push(c.backend().pool_usage());
    }
    let (classes, bytes) = *classes_seen.last().unwrap();
    // 57 distinct lengths, padded 5 to 404 tokens: power-of-two size classes keep the free list to
    // a few dozen sizes whatever the lengths, and its bytes under the cap.
    assert!(classes <= 24, "{classes} size classes after 57 lengths: {classes_seen:?}");
    assert!(bytes <= 256 << 20, "{bytes} free bytes");
}

/// A model whose texts are longer than the attention kernel's chunk of keys (1024) runs on the
/// GPU with the CPU's scores; heads wider than 256 are refused by the GPU at load (so `auto`
/// takes the CPU), with the reason.
#[test]
fn long_texts_run_on_the_gpu_and_wide_heads_are_refused() {
    use zeroshot::backend::Backend;
    let Some(gpu) = gpu_backend(GpuOptions::default()) else { return };
    let f = files("typeform-layout");
    let config_json = common::edit_json(&f.config_json, |v| v["max_position_embeddings"] = 1100.into());
    let model_safetensors = common::rewrite_safetensors(&f.model_safetensors, |tensors| {
        let (_, t) = tensors.iter_mut().find(|(n, _)| n.ends_with("position_embeddings.weight")).unwrap();
        t.data = t.data.iter().copied().cycle().take(1100 * 16 * 4).collect();
        t.shape = vec![1100, 16];
    });
    let long = || zeroshot::ModelFiles {
        config_json: config_json.clone(),
        model_safetensors: model_safetensors.clone(),
        tokenizer_config_json: None,
        ..files("typeform-layout")
    };
    let labels = vec!["roads".to_string(), "sport".to_string()];
    let text = "word ".repeat(1090);
    let mut on_gpu = ZeroShotClassifier::new(Checkpoint::load(long()).unwrap(), gpu).unwrap();
    let mut cpu = ZeroShotClassifier::new(Checkpoint::load(long()).unwrap(), CpuBackend::new(1)).unwrap();
    let want = pollster::block_on(cpu.classify(&text, &labels, &Default::default())).unwrap();
    let got = pollster::block_on(on_gpu.classify(&text, &labels, &Default::default())).unwrap();
    assert!(!got.truncated && got.labels == want.labels, "{got:?} {want:?}");
    for (g, w) in got.scores.iter().zip(&want.scores) {
        assert!((g - w).abs() < 5e-5, "1092 tokens: GPU score {g}, CPU {w}");
    }
    // Heads over 256 wide.
    let Some(gpu) = gpu_backend(GpuOptions::default()) else { return };
    let wide = zeroshot::Config::from_json(&common::edit_json(&f.config_json, |v| {
        v["dim"] = 300.into();
        v["n_heads"] = 1.into();
    }))
    .unwrap();
    let err = gpu.supports(&wide, 512).unwrap_err().to_string();
    assert!(err.contains("heads of at most 256") && err.contains("this model's are 300"), "{err}");
    assert!(gpu.supports(&zeroshot::Config::from_json(&f.config_json).unwrap(), 512).is_ok());
}

/// A device lost while a forward is in flight is an error (a `GPU:` one, which `auto` answers by
/// moving to the CPU), never a hang or a panic; later calls say the device is lost.
#[test]
fn a_device_lost_in_flight_is_an_error() {
    let Some(gpu) = gpu_backend(GpuOptions::default()) else { return };
    let mut c = ZeroShotClassifier::new(Checkpoint::load(files("typeform-layout")).unwrap(), gpu).unwrap();
    let labels = vec!["roads".to_string(), "sport".to_string()];
    pollster::block_on(c.classify("a first text", &labels, &Default::default())).expect("runs before the loss");
    c.backend_mut().lose_device_in_next_read();
    for _ in 0..2 {
        let err = pollster::block_on(c.classify("a text", &labels, &Default::default())).unwrap_err();
        assert!(matches!(err, zeroshot::Error::Gpu(_)), "{err}");
    }
}

/// int8 weights stay int8 in GPU memory (Linear weights and the word embedding packed four to a
/// u32, unpacked by matmul_int8.wgsl and embed_int8.wgsl): the int8 copy of a model takes about a
/// third of the fp32 bytes there (a quarter, plus the per-row scales and the f32 biases and
/// position embeddings of this tiny model), and no more than its file.
#[test]
fn int8_weights_stay_int8_in_gpu_memory() {
    let mut bytes = Vec::new();
    for name in ["typeform-layout", "typeform-layout-int8"] {
        let Some(gpu) = gpu_backend(GpuOptions::default()) else { return };
        let classifier = ZeroShotClassifier::new(Checkpoint::load(files(name)).unwrap(), gpu).unwrap();
        bytes.push(classifier.backend().weight_bytes());
    }
    let file = files("typeform-layout-int8").model_safetensors.len() as u64;
    println!("GPU weight bytes: fp32 {}, int8 {} (file {file})", bytes[0], bytes[1]);
    assert!(bytes[1] * 3 < bytes[0] && bytes[1] <= file, "fp32 {} vs int8 {} bytes", bytes[0], bytes[1]);
}
