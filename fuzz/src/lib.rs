//! What every fuzz target asserts of a classification that succeeded: a bug, not an input error,
//! is a panic here.

use zeroshot::{Classification, CpuBackend, Options, ZeroShotClassifier};

/// Classifies and checks the result's invariants; errors are fine (they are the user's).
pub fn classify_and_check(c: &mut ZeroShotClassifier<CpuBackend>, text: &str, labels: &[String], options: &Options) {
    if let Ok(result) = pollster::block_on(c.classify(text, labels, options)) {
        check(&result, labels, options.multi_label);
    }
}

fn check(r: &Classification, labels: &[String], multi_label: bool) {
    assert_eq!(r.labels.len(), labels.len());
    let mut sorted_in = labels.to_vec();
    let mut sorted_out = r.labels.clone();
    sorted_in.sort();
    sorted_out.sort();
    assert_eq!(sorted_in, sorted_out, "labels are a permutation of the input's");
    assert!(r.scores.iter().all(|s| s.is_finite() && (0.0..=1.0).contains(s)), "{:?}", r.scores);
    assert!(r.scores.windows(2).all(|w| w[0] >= w[1]), "sorted descending: {:?}", r.scores);
    if !multi_label && labels.len() > 1 {
        let sum: f64 = r.scores.iter().sum();
        assert!((sum - 1.0).abs() < 1e-6, "softmax across labels sums to {sum}");
    }
}
