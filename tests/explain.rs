//! Explanations against transformers: for every fixture's explain records (generate.py builds the
//! occluded id lists by hand and runs transformers' model on them), the words, which labels each
//! word has an effect on, and the effects, on the CPU (1 and 2 threads) and the GPU.

mod common;

use common::{FIXTURES, SCORE_TOL, files, gpu_backend, reference};
use serde_json::Value;
use zeroshot::backend::Backend;
use zeroshot::backend::gpu::GpuOptions;
use zeroshot::{Checkpoint, CpuBackend, Options, ZeroShotClassifier};

/// An effect is a difference of two scores, each within SCORE_TOL of transformers'.
const EFFECT_TOL: f64 = 2.0 * SCORE_TOL;

/// Every explain record of `name` through `classifier`; one line per mismatch.
fn check<B: Backend>(classifier: &mut ZeroShotClassifier<B>, name: &str) -> Vec<String> {
    let reference = reference(name);
    let Some(records) = reference["explain"].as_array() else { return Vec::new() };
    let (mut failures, mut worst) = (Vec::new(), 0.0f64);
    for (n, case) in records.iter().enumerate() {
        let labels: Vec<String> =
            case["labels"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().into()).collect();
        let options = Options {
            hypothesis_template: case["template"].as_str().unwrap().into(),
            multi_label: case["multi_label"].as_bool().unwrap(),
        };
        let got = pollster::block_on(classifier.explain(case["text"].as_str().unwrap(), &labels, &options)).unwrap();
        if got.truncated != case["truncated"].as_bool().unwrap() {
            failures.push(format!("{name} case {n}: truncated {}", got.truncated));
        }
        let want_words = case["words"].as_array().unwrap();
        if got.words.len() != want_words.len() {
            failures.push(format!("{name} case {n}: {} words, expected {}", got.words.len(), want_words.len()));
            continue;
        }
        for (i, (g, w)) in got.words.iter().zip(want_words).enumerate() {
            let at = (
                w["text"].as_str().unwrap(),
                w["start"].as_u64().unwrap() as usize,
                w["end"].as_u64().unwrap() as usize,
            );
            if (g.word.text.as_str(), g.word.start, g.word.end) != at {
                failures.push(format!("{name} case {n} word {i}: actual {:?}, expected {at:?}", g.word));
            }
            let want = w["effects"].as_object().unwrap();
            let mut got_labels: Vec<&str> = g.effects.iter().map(|(l, _)| l.as_str()).collect();
            let mut want_labels: Vec<&str> = want.keys().map(String::as_str).collect();
            got_labels.sort_unstable();
            want_labels.sort_unstable();
            if got_labels != want_labels {
                failures.push(format!(
                    "{name} case {n} word {i} {:?}: effects on {got_labels:?}, expected {want_labels:?}",
                    g.word.text
                ));
            }
            for (label, effect) in &g.effects {
                let Some(expected) = want.get(label).and_then(Value::as_f64) else { continue };
                worst = worst.max((effect - expected).abs());
                if (effect - expected).abs() > EFFECT_TOL {
                    failures.push(format!(
                        "{name} case {n} word {i} {:?} on {label:?}: actual {effect}, expected {expected}",
                        g.word.text
                    ));
                }
            }
        }
    }
    println!("{name} ({}): {} cases, largest effect error {worst:.2e}", classifier.backend_name(), records.len());
    failures
}

fn classifier<B: Backend>(name: &str, backend: B) -> ZeroShotClassifier<B> {
    ZeroShotClassifier::new(Checkpoint::load(files(name)).unwrap(), backend).unwrap()
}

#[test]
fn explanations_match_transformers_on_the_cpu() {
    let with_records = FIXTURES.iter().filter(|n| reference(n)["explain"].is_array()).count();
    assert!(with_records >= 10, "only {with_records} fixtures have explain records");
    for threads in [1, 2] {
        for name in FIXTURES {
            let failures = check(&mut classifier(name, CpuBackend::new(threads)), name);
            assert!(failures.is_empty(), "{threads} thread(s):\n{}", failures.join("\n"));
        }
    }
}

#[test]
fn explanations_match_transformers_on_the_gpu() {
    for name in FIXTURES {
        let Some(gpu) = gpu_backend(GpuOptions::default()) else { return };
        let failures = check(&mut classifier(name, gpu), name);
        assert!(failures.is_empty(), "gpu:\n{}", failures.join("\n"));
    }
}

/// An explanation's scores and labels are the classification's; a word whose tokens all come
/// after the cut has no effect for any label; the job runs in steps of bounded rows.
#[test]
fn an_explanation_is_its_classification_plus_the_words() {
    let mut c = classifier("f16-relu", CpuBackend::new(1)); // 40 tokens at most
    let labels = vec!["delivery".to_string(), "support".to_string(), "price".to_string()];
    let text = "The parcel was late and nobody answered. ".repeat(6);
    let options = Options::default();
    let classified = pollster::block_on(c.classify(&text, &labels, &options)).unwrap();
    let mut job = c.explain_job(&text, &labels, &options).unwrap();
    let (done, total) = job.progress();
    assert_eq!(done, 0);
    let mut steps = 0;
    while !pollster::block_on(c.explain_step(&mut job, 100)).unwrap() {
        steps += 1;
        assert!(job.progress().0 > 0 && job.progress().1 == total);
    }
    assert!(steps >= 3, "100-row steps over {total} pairs of up to 40 tokens: {steps} steps");
    let explained = c.explain_result(job).unwrap();
    assert_eq!((&explained.labels, explained.truncated), (&classified.labels, true));
    for (a, b) in explained.scores.iter().zip(&classified.scores) {
        assert!((a - b).abs() < 1e-12, "explanation score {a}, classification {b}");
    }
    let last = explained.words.last().unwrap();
    assert!(last.effects.is_empty(), "a word past the cut has no effect: {last:?}");
    assert!(explained.words[0].effects.len() == 3, "the first word is held by every pair");
    let json = serde_json::to_value(&explained).unwrap();
    assert!(json["words"][0]["effects"]["delivery"].is_number() && json["words"][0]["text"] == "The", "{json}");
}

/// An explanation over its bound of token rows is refused with the numbers, before any forward:
/// a text transformers does not cut (deberta-v3: relative positions only) of 2,000 words.
#[test]
fn an_explanation_over_its_bound_is_refused_with_the_numbers() {
    let c = classifier("deberta-v3", CpuBackend::new(1));
    let labels = vec!["a".to_string()];
    let text = "word ".repeat(1500);
    let err = c.explain_job(&text, &labels, &Options::default()).err().expect("refused").to_string();
    let bound = zeroshot::explain::MAX_EXPLAIN_ROWS;
    assert!(
        err.contains("1501 pairs") && err.contains(&format!("over the {bound} zeroshot explains at once")),
        "{err}"
    );
}
