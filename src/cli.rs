//! The native command line (see `main.rs`).

use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use zeroshot::pipeline::{DEFAULT_TEMPLATE, hypothesis, parse_labels};
use zeroshot::{Checkpoint, CpuBackend, Options, ZeroShotClassifier};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum BackendChoice {
    /// A hardware GPU when there is one, else the CPU.
    Auto,
    Cpu,
    Gpu,
}

/// Zero-shot text classification with a DistilBERT NLI model (e.g. typeform/distilbert-base-uncased-mnli).
#[derive(Parser, Debug)]
#[command(name = "zeroshot", version, about)]
struct Args {
    /// Model folder in the Hugging Face Hub's layout: config.json, model.safetensors, and
    /// tokenizer.json or vocab.txt (+ tokenizer_config.json).
    #[arg(long)]
    model: PathBuf,
    /// Candidate labels, comma-separated: "sports, politics, food".
    #[arg(long)]
    labels: String,
    /// Hypothesis template; `{}` is replaced by each label.
    #[arg(long, default_value = DEFAULT_TEMPLATE)]
    template: String,
    /// Score each label on its own (scores need not sum to 1).
    #[arg(long)]
    multi_label: bool,
    /// Where the model runs.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    backend: BackendChoice,
    /// CPU threads for matrix products (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Texts to classify; without any, texts are read from standard input, one per line.
    texts: Vec<String>,
}

pub fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(message) => {
            eprintln!("zeroshot: {message}");
            ExitCode::from(2)
        }
    }
}

/// Ok(true) when every text was classified, Ok(false) when some failed; Err stops the run.
fn run(args: &Args) -> Result<bool, String> {
    let labels = parse_labels(&args.labels);
    if labels.is_empty() {
        return Err(zeroshot::Error::NoLabels.to_string());
    }
    hypothesis(&args.template, &labels[0]).map_err(|e| e.to_string())?;
    let options = Options { hypothesis_template: args.template.clone(), multi_label: args.multi_label };
    let mut classifier = load(args)?;
    let mut out = io::stdout().lock();
    let mut all_ok = true;
    let mut emit = |key: &str, n: usize, text: &str| -> Result<bool, String> {
        let line = match pollster::block_on(classifier.classify(text, &labels, &options)) {
            Ok(result) => serde_json::to_string(&result).map_err(|e| e.to_string())?,
            Err(e) => {
                all_ok = false;
                let message = serde_json::Value::String(e.to_string());
                format!("{{\"{key}\":{n},\"error\":{message}}}")
            }
        };
        // A closed pipe (`| head`) ends the run quietly.
        Ok(writeln!(out, "{line}").and_then(|()| out.flush()).is_ok())
    };
    if args.texts.is_empty() {
        for (i, line) in io::stdin().lock().lines().enumerate() {
            let line = line.map_err(|e| format!("reading standard input: {e}"))?;
            if !emit("line", i + 1, &line)? {
                break;
            }
        }
    } else {
        for (i, text) in args.texts.iter().enumerate() {
            if !emit("text", i + 1, text)? {
                break;
            }
        }
    }
    Ok(all_ok)
}

fn load(args: &Args) -> Result<ZeroShotClassifier<CpuBackend>, String> {
    let checkpoint = Checkpoint::from_dir(&args.model).map_err(|e| e.to_string())?;
    let backend = match args.threads {
        Some(n) => CpuBackend::new(n),
        None => CpuBackend::default(),
    };
    match args.backend {
        BackendChoice::Gpu => Err("--backend gpu: the GPU backend is not built yet; use --backend cpu".into()),
        BackendChoice::Auto | BackendChoice::Cpu => {
            ZeroShotClassifier::new(checkpoint, backend).map_err(|e| e.to_string())
        }
    }
}
