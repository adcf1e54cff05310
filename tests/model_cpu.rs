//! The whole model on the CPU against transformers: logits, scores and label order for every
//! fixture checkpoint and recorded case.

mod common;

use common::{FIXTURES, check_pipeline, files, reference};
use zeroshot::{Checkpoint, CpuBackend, ZeroShotClassifier};

#[test]
fn cpu_matches_transformers_on_every_fixture() {
    for threads in [1, 2] {
        for name in FIXTURES {
            let checkpoint = Checkpoint::load(files(name)).unwrap();
            let tokenizer = Checkpoint::load(files(name)).unwrap().tokenizer;
            let mut classifier = ZeroShotClassifier::new(checkpoint, CpuBackend::new(threads)).unwrap();
            let parity = check_pipeline(&mut classifier, &tokenizer, &reference(name));
            println!(
                "{name} ({threads} threads): max logit error {:.2e}, max score error {:.2e}",
                parity.max_logit_err, parity.max_score_err
            );
            assert!(parity.failures.is_empty(), "{name} ({threads} threads):\n{}", parity.failures.join("\n"));
        }
    }
}
