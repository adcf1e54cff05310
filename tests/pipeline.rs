//! Pipeline semantics beyond the recorded cases: templates, label strings, refusals, chunking.

mod common;

use common::files;
use zeroshot::backend::MAX_BATCH_ROWS;
use zeroshot::pipeline::{hypotheses, hypothesis, parse_labels};
use zeroshot::{Checkpoint, CpuBackend, Options, ZeroShotClassifier};

fn classifier(name: &str) -> ZeroShotClassifier<CpuBackend> {
    ZeroShotClassifier::new(Checkpoint::load(files(name)).unwrap(), CpuBackend::new(1)).unwrap()
}

fn classify(
    c: &mut ZeroShotClassifier<CpuBackend>,
    text: &str,
    labels: &[&str],
    o: &Options,
) -> zeroshot::Result<zeroshot::Classification> {
    let labels: Vec<String> = labels.iter().map(|s| s.to_string()).collect();
    pollster::block_on(c.classify(text, &labels, o))
}

/// Each template's `.format("lab")` as Python 3 gives it (checked with python3), or the error
/// Python raises; the refusals of valid Python say "not supported".
#[test]
fn templates_follow_python_format() {
    for (template, expected) in [
        ("This example is {}.", "This example is lab."),
        ("{0}{0}", "lablab"),
        ("{00}", "lab"),
        ("{:}", "lab"),
        ("{!s}", "lab"),
        ("{0!s:}", "lab"),
        ("Is it {{{}}}?", "Is it {lab}?"),
        ("{{}}", "{}"),
    ] {
        assert_eq!(hypothesis(template, "lab").unwrap(), expected, "{template}");
    }
    assert_eq!(hypothesis("{}", "{}").unwrap(), "{}", "the label is not re-parsed");
    for (template, reason) in [
        ("{0} or {}", "cannot switch from automatic field numbering"),
        ("{} or {0}", "cannot switch"),
        ("{}{}", "asks for argument 1"),
        ("{1}", "asks for argument 1"),
        ("{", "expected '}' before end of string"),
        ("{0", "expected '}' before end of string"),
        ("oops }", "single '}'"),
        ("About {label}.", "{label} names a keyword argument"),
        ("{ 0}", "names a keyword argument"),
        ("{:>10}", "not supported"),
        ("{!r}", "not supported"),
        ("{0.upper}", "not supported"),
        ("{[0]}", "not supported"),
        ("{0:{}}", "not supported"),
    ] {
        let err = hypothesis(template, "x").unwrap_err().to_string();
        assert!(err.starts_with(&format!("hypothesis template {template:?}: ")) && err.contains(reason), "{err}");
    }
}

/// transformers refuses a template the first label leaves unchanged, and only that.
#[test]
fn a_template_without_a_slot_is_refused_as_transformers_does() {
    let labels = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    for template in ["This example is sports.", "{}"] {
        let first = if template == "{}" { "{}" } else { "a" };
        let err = hypotheses(template, &labels(&[first, "b"])).unwrap_err().to_string();
        assert!(err.contains("changes nothing"), "{template}: {err}");
    }
    // "{{}}" formats to "{}", which differs from the template: Python accepts it.
    assert_eq!(hypotheses("{{}}", &labels(&["a", "b"])).unwrap(), ["{}", "{}"]);
    assert_eq!(hypotheses("It is {}.", &labels(&["a", "b"])).unwrap(), ["It is a.", "It is b."]);
}

#[test]
fn label_strings_split_on_commas() {
    assert_eq!(parse_labels(" sports, politics ,,food,  "), ["sports", "politics", "food"]);
    assert!(parse_labels(" , ,").is_empty());
}

#[test]
fn bad_input_is_refused_and_the_next_call_works() {
    let mut c = classifier("typeform-layout");
    let o = Options::default();
    assert_eq!(
        classify(&mut c, "", &["a"], &o).unwrap_err().to_string(),
        "the text is empty; give at least one character to classify"
    );
    assert!(classify(&mut c, "text", &[], &o).unwrap_err().to_string().starts_with("no candidate labels"));
    let bad = Options { hypothesis_template: "no placeholder".into(), multi_label: false };
    assert!(classify(&mut c, "text", &["a"], &bad).unwrap_err().to_string().contains("changes nothing"));
    let r = classify(&mut c, " \t ", &["a", "b"], &o).expect("whitespace-only text is classified");
    assert_eq!((r.labels.len(), r.truncated), (2, false));
    assert!((r.scores.iter().sum::<f64>() - 1.0).abs() < 1e-9);
}

#[test]
fn a_long_hypothesis_is_an_error_not_a_panic() {
    let mut c = classifier("f16-relu");
    let label = "word ".repeat(60);
    let err = classify(&mut c, "text", &["ok", &label], &Options::default()).unwrap_err().to_string();
    assert!(err.contains("40-token limit"), "{err}");
}

#[test]
fn many_labels_run_in_chunks_with_the_same_numbers() {
    let mut c = classifier("typeform-layout");
    let long_text = "The committee met again to discuss the budget and the roads. ".repeat(60);
    let labels: Vec<String> =
        (0..(2 * MAX_BATCH_ROWS / 512 + 3)).map(|i| format!("topic {i} {}", "x ".repeat(i % 5))).collect();
    let tok = Checkpoint::load(files("typeform-layout")).unwrap().tokenizer;
    let encodings: Vec<_> = labels
        .iter()
        .map(|l| tok.encode_pair(&long_text, &hypothesis("This example is {}.", l).unwrap()).unwrap())
        .collect();
    assert!(encodings.iter().all(|e| e.truncated && e.ids.len() == 512));
    let together = pollster::block_on(c.logits(&encodings)).unwrap();
    assert_eq!(together.len(), labels.len());
    for (i, e) in encodings.iter().enumerate().step_by(7) {
        let alone = pollster::block_on(c.logits(std::slice::from_ref(e))).unwrap();
        for (j, (a, b)) in together[i].iter().zip(&alone[0]).enumerate() {
            assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "label {i} logit {j}: actual {a}, expected {b}");
        }
    }
    let r = classify(&mut c, &long_text, &labels.iter().map(String::as_str).collect::<Vec<_>>(), &Options::default())
        .unwrap();
    assert!(r.truncated);
    assert!(r.scores.windows(2).all(|w| w[0] >= w[1]), "sorted descending");
}

/// Texts classified together give each text what it gets alone; a text's own error stays its own.
#[test]
fn a_batch_of_texts_gives_what_each_gets_alone() {
    let mut c = classifier("typeform-layout");
    let labels: Vec<String> = ["roads", "money", "sport", "food"].iter().map(|s| s.to_string()).collect();
    let texts: Vec<String> =
        (0..23)
            .map(|i| {
                if i == 7 {
                    String::new()
                } else {
                    format!("{} about the new road budget", "very ".repeat(i * 13 % 90))
                }
            })
            .collect();
    for multi_label in [false, true] {
        let o = Options { multi_label, ..Options::default() };
        let batch = pollster::block_on(c.classify_batch(&texts, &labels, &o)).expect("no shared error");
        assert_eq!(batch.len(), texts.len());
        for (i, (text, got)) in texts.iter().zip(&batch).enumerate() {
            let alone = pollster::block_on(c.classify(text, &labels, &o));
            match (got, alone) {
                (Ok(g), Ok(a)) => {
                    assert_eq!(
                        (&g.sequence, &g.labels, g.truncated),
                        (&a.sequence, &a.labels, a.truncated),
                        "text {i}"
                    );
                    for (x, y) in g.scores.iter().zip(&a.scores) {
                        assert!((x - y).abs() < 1e-6, "text {i}: batch {x}, alone {y}");
                    }
                }
                (Err(g), Err(a)) => assert_eq!(g.to_string(), a.to_string(), "text {i}"),
                (g, a) => panic!("text {i}: batch {g:?}, alone {a:?}"),
            }
        }
        assert!(batch[7].as_ref().unwrap_err().to_string().starts_with("the text is empty"));
    }
    let bad = Options { hypothesis_template: "{".into(), multi_label: false };
    assert!(pollster::block_on(c.classify_batch(&texts, &labels, &bad)).is_err(), "a bad template fails them all");
}
