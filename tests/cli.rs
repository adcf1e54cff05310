//! The `zeroshot` binary as a user runs it.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::{SCORE_TOL, fixture_dir, reference};
use serde_json::Value;

fn zeroshot(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_zeroshot"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("zeroshot runs");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or(b"")).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8(out.stdout.clone()).unwrap().lines().map(|l| serde_json::from_str(l).expect(l)).collect()
}

#[test]
fn prints_transformers_scores_as_json_lines() {
    let reference = reference("tokenizer-json");
    let case = &reference["pipeline"][3]; // custom template, four labels
    let labels: Vec<&str> = case["labels"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    let model = fixture_dir("tokenizer-json");
    let out = zeroshot(
        &[
            "--model",
            model.to_str().unwrap(),
            "--labels",
            &labels.join(","),
            "--template",
            case["template"].as_str().unwrap(),
            "--backend",
            "cpu",
            case["text"].as_str().unwrap(),
        ],
        None,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got = &lines(&out)[0];
    assert_eq!(got["labels"], case["expected"]["labels"]);
    assert_eq!(got["sequence"], case["expected"]["sequence"]);
    assert_eq!(got["truncated"], false);
    for (g, w) in got["scores"].as_array().unwrap().iter().zip(case["expected"]["scores"].as_array().unwrap()) {
        assert!((g.as_f64().unwrap() - w.as_f64().unwrap()).abs() < SCORE_TOL, "actual {g}, expected {w}");
    }
}

#[test]
fn reads_stdin_line_by_line_and_reports_bad_lines() {
    let model = fixture_dir("f16-relu");
    let out = zeroshot(
        &["--model", model.to_str().unwrap(), "--labels", "good, bad", "--multi-label"],
        Some(b"first text\n\nthird text\r\n"),
    );
    assert_eq!(out.status.code(), Some(1), "a failed line makes the exit status 1");
    let l = lines(&out);
    assert_eq!(l.len(), 3);
    assert_eq!(l[0]["sequence"], "first text");
    assert_eq!(l[1]["line"], 2);
    assert!(l[1]["error"].as_str().unwrap().contains("text is empty"));
    assert_eq!(l[2]["sequence"], "third text");
    let scores: Vec<f64> = l[2]["scores"].as_array().unwrap().iter().map(|s| s.as_f64().unwrap()).collect();
    assert!(scores.iter().all(|s| (0.0..=1.0).contains(s)) && scores.iter().sum::<f64>() != 1.0);
}

#[test]
fn errors_go_to_stderr_with_a_nonzero_status() {
    let model = fixture_dir("f16-relu");
    let model = model.to_str().unwrap();
    for (args, expected) in [
        (vec!["--model", "/no/such/dir", "--labels", "a", "x"], "/no/such/dir has no model.safetensors"),
        (vec!["--model", model, "--labels", " , ", "x"], "no candidate labels"),
        (vec!["--model", model, "--labels", "a", "--template", "no slot", "x"], "changes nothing"),
    ] {
        let out = zeroshot(&args, None);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected) && !stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn the_backend_in_use_is_reported() {
    let model = fixture_dir("typeform-layout");
    let model = model.to_str().unwrap();
    let run = |backend: &str| zeroshot(&["--model", model, "--labels", "a,b", "--backend", backend, "some text"], None);
    // auto skips software adapters (lavapipe here): it says so and runs on the CPU.
    let auto = run("auto");
    let stderr = String::from_utf8_lossy(&auto.stderr);
    assert!(auto.status.success() && stderr.contains("zeroshot: using the"), "{stderr}");
    let cpu = run("cpu");
    assert!(cpu.status.success() && !String::from_utf8_lossy(&cpu.stderr).contains("using the"));
    let gpu = run("gpu");
    let stderr = String::from_utf8_lossy(&gpu.stderr);
    if gpu.status.success() {
        assert!(stderr.contains("zeroshot: using the GPU: "), "{stderr}");
        let (g, c) = (&lines(&gpu)[0], &lines(&cpu)[0]);
        assert_eq!(g["labels"], c["labels"]);
        for (x, y) in g["scores"].as_array().unwrap().iter().zip(c["scores"].as_array().unwrap()) {
            assert!((x.as_f64().unwrap() - y.as_f64().unwrap()).abs() < SCORE_TOL, "gpu {x}, cpu {y}");
        }
    } else {
        assert!(std::env::var("ZEROSHOT_REQUIRE_GPU").as_deref() != Ok("1"), "--backend gpu failed: {stderr}");
        assert_eq!(gpu.status.code(), Some(2));
        assert!(stderr.contains("no usable GPU adapter") || stderr.contains("GPU:"), "{stderr}");
    }
}

/// A line that is not UTF-8 is that line's error; the lines after it are still classified.
#[test]
fn invalid_utf8_on_stdin_loses_only_that_line() {
    let model = fixture_dir("f16-relu");
    let out =
        zeroshot(&["--model", model.to_str().unwrap(), "--labels", "good, bad"], Some(b"one\n\xff\xfe bad\nthree\n"));
    assert_eq!(out.status.code(), Some(1));
    let l = lines(&out);
    assert_eq!(l.len(), 3, "{l:?}");
    assert_eq!((&l[0]["sequence"], &l[2]["sequence"]), (&Value::from("one"), &Value::from("three")));
    assert_eq!(l[1]["line"], 2);
    assert!(l[1]["error"].as_str().unwrap().starts_with("line 2 is not valid UTF-8"), "{}", l[1]);
}

/// --threads above the cores is clamped with a note (never thousands of threads); 0 is refused.
#[test]
fn thread_counts_are_checked() {
    let model = fixture_dir("f16-relu");
    let run = |threads: &str| {
        zeroshot(
            &["--model", model.to_str().unwrap(), "--labels", "a,b", "--backend", "cpu", "--threads", threads, "text"],
            None,
        )
    };
    let many = run("100000");
    let stderr = String::from_utf8_lossy(&many.stderr);
    assert!(many.status.success() && stderr.contains("--threads 100000 is more than this machine's"), "{stderr}");
    assert_eq!(lines(&many)[0]["labels"].as_array().unwrap().len(), 2);
    for bad in ["0", "many", "1.5"] {
        let out = run(bad);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {stderr}");
        assert!(stderr.contains("is not a thread count"), "{bad}: {stderr}");
    }
}

/// Lines already read are classified together, but an interactive pipe gets each answer before
/// it sends the next line; a file's many lines come out in order, one result each.
#[test]
fn stdin_answers_each_line_at_once_and_batches_what_is_waiting() {
    use std::io::{BufRead, BufReader};
    let model = fixture_dir("f16-relu");
    let mut child = Command::new(env!("CARGO_BIN_EXE_zeroshot"))
        .args(["--model", model.to_str().unwrap(), "--labels", "good, bad", "--backend", "cpu"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let mut output = BufReader::new(child.stdout.take().unwrap());
    for text in ["first", "second"] {
        writeln!(input, "{text}").unwrap();
        input.flush().unwrap();
        let mut line = String::new();
        output.read_line(&mut line).unwrap(); // blocks until this line's answer: no waiting for EOF
        assert_eq!(serde_json::from_str::<Value>(&line).unwrap()["sequence"], text);
    }
    let many: String = (0..150).map(|i| if i == 70 { "\n".to_string() } else { format!("text {i}\n") }).collect();
    input.write_all(many.as_bytes()).unwrap();
    drop(input);
    let rest: Vec<Value> = output.lines().map(|l| serde_json::from_str(&l.unwrap()).unwrap()).collect();
    assert_eq!(rest.len(), 150);
    for (i, v) in rest.iter().enumerate() {
        if i == 70 {
            assert_eq!(v["line"], 73);
        } else {
            assert_eq!(v["sequence"], format!("text {i}"));
        }
    }
    assert_eq!(child.wait().unwrap().code(), Some(1), "the empty line failed");
}

/// `--explain` adds each word's effects to the line, as transformers' occlusions give them, for
/// texts on the command line and from standard input (a bad line still only fails itself).
#[test]
fn explain_adds_each_words_effects() {
    let reference = reference("roberta-bpe");
    let case = &reference["explain"][1]; // multi-label
    let labels: Vec<&str> = case["labels"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    let model = fixture_dir("roberta-bpe");
    let args = ["--model", model.to_str().unwrap(), "--labels", &labels.join(","), "--backend", "cpu", "--multi-label"];
    let text = case["text"].as_str().unwrap();
    let on_line = zeroshot(&[&args[..], &["--explain", text]].concat(), None);
    let stdin = format!("{text}\n\n");
    let from_stdin = zeroshot(&[&args[..], &["--explain"]].concat(), Some(stdin.as_bytes()));
    for out in [&on_line, &from_stdin] {
        let got = &lines(out)[0];
        let words = got["words"].as_array().expect("words");
        assert_eq!(words.len(), case["words"].as_array().unwrap().len());
        for (g, w) in words.iter().zip(case["words"].as_array().unwrap()) {
            assert_eq!((&g["text"], &g["start"], &g["end"]), (&w["text"], &w["start"], &w["end"]));
            for (label, effect) in w["effects"].as_object().unwrap() {
                let got = g["effects"][label].as_f64().expect("an effect for each label the reference has");
                assert!(
                    (got - effect.as_f64().unwrap()).abs() < 2.0 * SCORE_TOL,
                    "{label}: actual {got}, expected {effect}"
                );
            }
        }
    }
    let lines = lines(&from_stdin);
    assert!(lines[1]["error"].as_str().unwrap().contains("empty"), "{}", lines[1]);
    assert!(!from_stdin.status.success(), "a failed line gives exit status 1");
}
