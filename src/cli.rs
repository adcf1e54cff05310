//! The native command line (see `main.rs`).

use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args as ClapArgs, Parser, Subcommand, ValueEnum};
use zeroshot::backend::gpu::{GpuBackend, GpuOptions};
use zeroshot::backend::{Backend, Batch};
use zeroshot::convert::{WeightFormat, convert_dir};
use zeroshot::model::Encoder;
use zeroshot::pipeline::{DEFAULT_TEMPLATE, hypotheses, parse_labels};
use zeroshot::{Checkpoint, Classification, CpuBackend, Explanation, Options, ZeroShotClassifier, synthetic};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum BackendChoice {
    /// A hardware GPU when there is one (software adapters are skipped), else the CPU.
    Auto,
    Cpu,
    /// Any GPU adapter, software ones included; an error when there is none.
    Gpu,
}

/// Zero-shot text classification with an NLI model: DistilBERT, BERT, RoBERTa, XLM-RoBERTa or DeBERTa-v3 (e.g. typeform/distilbert-base-uncased-mnli).
#[derive(Parser, Debug)]
#[command(name = "zeroshot", version, about, subcommand_negates_reqs = true, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    classify: ClassifyArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Time forwards of a typeform-shaped model with random weights (made in-process).
    Bench(BenchArgs),
    /// Write a smaller copy of a model folder: f16 (half the bytes) or int8 (about a quarter).
    Convert(ConvertArgs),
}

#[derive(ClapArgs, Debug)]
struct ConvertArgs {
    /// Weight format to write: f16 (every float tensor as F16) or int8 (Linear weights and the
    /// word embedding as I8 with one F32 scale per row; the rest F32).
    #[arg(long, value_parser = |s: &str| WeightFormat::parse(s).map_err(|e| e.to_string()))]
    to: WeightFormat,
    /// Model folder to read (Hub layout, any format zeroshot loads but int8).
    src: PathBuf,
    /// Folder to write (created if missing; must not hold a model.safetensors).
    dst: PathBuf,
}

#[derive(ClapArgs, Debug)]
struct ClassifyArgs {
    /// Model folder in the Hugging Face Hub's layout: config.json, model.safetensors, and
    /// tokenizer.json, vocab.txt, or vocab.json + merges.txt (+ tokenizer_config.json).
    #[arg(long, required = true)]
    model: Option<PathBuf>,
    /// Candidate labels, comma-separated: "sports, politics, food".
    #[arg(long, required = true)]
    labels: Option<String>,
    /// Hypothesis template; `{}` is replaced by each label.
    #[arg(long, default_value = DEFAULT_TEMPLATE)]
    template: String,
    /// Score each label on its own (scores need not sum to 1).
    #[arg(long)]
    multi_label: bool,
    /// Where the model runs.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    backend: BackendChoice,
    /// CPU threads for matrix products (default: all cores; more than the cores are clamped).
    #[arg(long, value_parser = parse_threads)]
    threads: Option<usize>,
    /// Most texts classified together (their label pairs share forwards, sorted by length); from
    /// standard input only lines already read are batched. 1 classifies each text alone.
    #[arg(long, default_value_t = 64, value_parser = parse_batch)]
    batch: usize,
    /// Add each word's effect on each label's score ("words": text, start and end in chars,
    /// effects by label): the score minus the score of the pair without that word. It costs
    /// about one classification per word.
    #[arg(long)]
    explain: bool,
    /// Texts to classify; without any, texts are read from standard input, one per line.
    texts: Vec<String>,
}

#[derive(ClapArgs, Debug)]
struct BenchArgs {
    /// Backends to time: cpu, gpu, or both.
    #[arg(long, default_value = "both")]
    backend: String,
    /// Shapes as BATCHxTOKENS, comma-separated.
    #[arg(long, default_value = "5x24,5x128,32x128,256x128")]
    shapes: String,
    /// Timed forwards per shape (after one warm-up).
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// CPU threads (default: all cores; more than the cores are clamped).
    #[arg(long, value_parser = parse_threads)]
    threads: Option<usize>,
    /// Model folders to time instead, comma-separated (say fp32, f16 and int8 copies of one model),
    /// on --backend: their forwards interleaved, each shape's times as ratios to the first's.
    #[arg(long, value_delimiter = ',')]
    models: Vec<PathBuf>,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Some(Command::Bench(args)) => bench(args).map(|()| true),
        Some(Command::Convert(args)) => convert(args).map(|()| true),
        None => classify_all(&cli.classify),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(message) => {
            eprintln!("zeroshot: {message}");
            ExitCode::from(2)
        }
    }
}

/// A classifier on whichever backend was chosen (one exists per run: size is no concern).
#[allow(clippy::large_enum_variant)]
enum Classifier {
    Cpu(ZeroShotClassifier<CpuBackend>),
    Gpu(ZeroShotClassifier<GpuBackend>),
}

/// One result per text of a batch, or the error they share.
type BatchResult = zeroshot::Result<Vec<zeroshot::Result<Classification>>>;

impl Classifier {
    fn classify_batch(&mut self, texts: &[&str], labels: &[String], options: &Options) -> BatchResult {
        match self {
            Classifier::Cpu(c) => pollster::block_on(c.classify_batch(texts, labels, options)),
            Classifier::Gpu(c) => pollster::block_on(c.classify_batch(texts, labels, options)),
        }
    }

    fn explain(&mut self, text: &str, labels: &[String], options: &Options) -> zeroshot::Result<Explanation> {
        match self {
            Classifier::Cpu(c) => pollster::block_on(c.explain(text, labels, options)),
            Classifier::Gpu(c) => pollster::block_on(c.explain(text, labels, options)),
        }
    }

    /// Each text's result as its JSON line: the classification, or with `explain` the explanation
    /// (texts one at a time: each has many pairs of its own). A failure they share is the error.
    fn run(&mut self, texts: &[&str], labels: &[String], options: &Options, explain: bool) -> LinesResult {
        let json = |r: zeroshot::Result<String>| r.map_err(|e| e.to_string());
        if !explain {
            let results = self.classify_batch(texts, labels, options)?;
            return Ok(results.into_iter().map(|r| json(r.map(|c| to_json(&c)))).collect());
        }
        let mut lines = Vec::with_capacity(texts.len());
        for text in texts {
            match self.explain(text, labels, options) {
                Err(e @ zeroshot::Error::Gpu(_)) => return Err(e),
                result => lines.push(json(result.map(|e| to_json(&e)))),
            }
        }
        Ok(lines)
    }
}

/// One JSON line per text (or that text's error), or the error they share.
type LinesResult = zeroshot::Result<Vec<Result<String, String>>>;

/// A result as its JSON line.
fn to_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value)
        .unwrap_or_else(|e| format!("{{\"error\":{}}}", serde_json::Value::String(e.to_string())))
}

/// `zeroshot convert`: writes the folder and says what it saved.
fn convert(args: &ConvertArgs) -> Result<(), String> {
    let format = args.to;
    let done = convert_dir(&args.src, &args.dst, format).map_err(|e| e.to_string())?;
    let mb = |bytes: usize| bytes as f64 / 1e6;
    eprintln!(
        "wrote {} ({}): model.safetensors {:.1} MB, {:.2}x the {:.1} MB original",
        args.dst.display(),
        format.name(),
        mb(done.dst_bytes),
        done.dst_bytes as f64 / done.src_bytes.max(1) as f64,
        mb(done.src_bytes)
    );
    Ok(())
}

/// `--batch`: 1 to 4096 texts.
fn parse_batch(s: &str) -> Result<usize, String> {
    s.parse::<usize>()
        .ok()
        .filter(|n| (1..=4096).contains(n))
        .ok_or_else(|| format!("{s:?} is not a batch size (1 to 4096)"))
}

/// `--threads`: a whole number from 1.
fn parse_threads(s: &str) -> Result<usize, String> {
    s.parse::<usize>().ok().filter(|&n| n >= 1).ok_or_else(|| format!("{s:?} is not a thread count (1 or more)"))
}

/// The CPU backend with `--threads` (default: every core). More threads than cores only adds
/// contention, and a huge count would spawn threads until the OS refuses: it is clamped.
fn cpu_backend(threads: Option<usize>) -> CpuBackend {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    match threads {
        Some(n) if n > cores => {
            eprintln!("zeroshot: --threads {n} is more than this machine's {cores} cores; using {cores}");
            CpuBackend::new(cores)
        }
        Some(n) => CpuBackend::new(n),
        None => CpuBackend::default(),
    }
}

fn load_cpu(dir: &std::path::Path, threads: Option<usize>) -> Result<Classifier, String> {
    let checkpoint = Checkpoint::from_dir(dir).map_err(|e| e.to_string())?;
    ZeroShotClassifier::new(checkpoint, cpu_backend(threads)).map(Classifier::Cpu).map_err(|e| e.to_string())
}

/// Loads the model on the chosen backend; `auto` says on stderr which one it used.
fn load(args: &ClassifyArgs, dir: &std::path::Path) -> Result<Classifier, String> {
    let cpu = |why: String| {
        if args.backend == BackendChoice::Auto {
            eprintln!("zeroshot: using the CPU ({why})");
        }
        load_cpu(dir, args.threads)
    };
    if args.backend == BackendChoice::Cpu {
        return cpu(String::new());
    }
    let options = GpuOptions { allow_software: args.backend == BackendChoice::Gpu, ..Default::default() };
    match load_gpu(dir, options) {
        Ok(classifier) => Ok(classifier),
        Err(e) if args.backend == BackendChoice::Auto => cpu(e),
        Err(e) => Err(e),
    }
}

fn load_gpu(dir: &std::path::Path, options: GpuOptions) -> Result<Classifier, String> {
    let checkpoint = Checkpoint::from_dir(dir).map_err(|e| e.to_string())?;
    let gpu = pollster::block_on(GpuBackend::new(options)).map_err(|e| e.to_string())?;
    let name = gpu.adapter_name();
    let mut classifier = ZeroShotClassifier::new(checkpoint, gpu).map_err(|e| e.to_string())?;
    pollster::block_on(classifier.warm_up()).map_err(|e| e.to_string())?;
    eprintln!("zeroshot: using the GPU: {name}");
    Ok(Classifier::Gpu(classifier))
}

/// Ok(true) when every text was classified, Ok(false) when some failed; Err stops the run.
fn classify_all(args: &ClassifyArgs) -> Result<bool, String> {
    let (Some(dir), Some(labels)) = (&args.model, &args.labels) else {
        return Err("--model and --labels are required".into());
    };
    let labels = parse_labels(labels);
    if labels.is_empty() {
        return Err(zeroshot::Error::NoLabels.to_string());
    }
    hypotheses(&args.template, &labels).map_err(|e| e.to_string())?;
    let options = Options { hypothesis_template: args.template.clone(), multi_label: args.multi_label };
    let mut classifier = load(args, dir)?;
    let mut out = io::stdout().lock();
    let mut all_ok = true;
    // One JSON line per text, in order; false once stdout is closed (`| head` ends the run quietly).
    let mut emit = |key: &str, batch: Vec<(usize, Result<String, String>)>| -> Result<bool, String> {
        let texts: Vec<&str> = batch.iter().filter_map(|(_, t)| t.as_deref().ok()).collect();
        let mut results = classify_texts(&mut classifier, args, dir, &texts, &labels, &options)?.into_iter();
        for (n, text) in &batch {
            let result = text
                .as_ref()
                .map_err(String::clone)
                .and_then(|_| results.next().unwrap_or(Err("no result for this text".into())));
            let line = match result {
                Ok(json) => json,
                Err(e) => {
                    all_ok = false;
                    format!("{{\"{key}\":{n},\"error\":{}}}", serde_json::Value::String(e))
                }
            };
            if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                return Ok(false);
            }
        }
        Ok(true)
    };
    if args.texts.is_empty() {
        for_each_batch(&mut io::BufReader::new(io::stdin()), args.batch, |batch| emit("line", batch))?;
    } else {
        let numbered: Vec<(usize, Result<String, String>)> =
            args.texts.iter().enumerate().map(|(i, t)| (i + 1, Ok(t.clone()))).collect();
        for batch in numbered.chunks(args.batch) {
            if !emit("text", batch.to_vec())? {
                break;
            }
        }
    }
    Ok(all_ok)
}

/// Calls `f` with batches of numbered lines of `input` (1-based; the text without its line
/// ending, or that line's error if it is not UTF-8) until it returns false. A batch is one line
/// plus the complete lines already read after it, at most `max`: an interactive pipe gets each
/// line's answer at once, a file gets batches.
fn for_each_batch<R: io::Read>(
    input: &mut io::BufReader<R>,
    max: usize,
    mut f: impl FnMut(Vec<(usize, Result<String, String>)>) -> Result<bool, String>,
) -> Result<(), String> {
    let mut n = 0;
    loop {
        let mut batch = Vec::new();
        while batch.is_empty() || (batch.len() < max && input.buffer().contains(&b'\n')) {
            let Some(line) = read_line(input)? else { break };
            n += 1;
            let text = String::from_utf8(line).map_err(|e| format!("line {n} is not valid UTF-8 ({e}); skipped"));
            batch.push((n, text));
        }
        if batch.is_empty() || !f(batch)? {
            return Ok(());
        }
    }
}

/// One line without its `\n` or `\r\n`; None at the end of input.
fn read_line(input: &mut impl BufRead) -> Result<Option<Vec<u8>>, String> {
    let mut buf = Vec::new();
    if input.read_until(b'\n', &mut buf).map_err(|e| format!("reading standard input: {e}"))? == 0 {
        return Ok(None);
    }
    if buf.ends_with(b"\n") {
        buf.pop();
        if buf.ends_with(b"\r") {
            buf.pop();
        }
    }
    Ok(Some(buf))
}

/// Classifies a batch; under `auto`, a GPU failure moves the run to the CPU and retries. An
/// error the texts share (a failed forward) becomes each text's error.
fn classify_texts(
    classifier: &mut Classifier,
    args: &ClassifyArgs,
    dir: &std::path::Path,
    texts: &[&str],
    labels: &[String],
    options: &Options,
) -> Result<Vec<Result<String, String>>, String> {
    let results = match classifier.run(texts, labels, options, args.explain) {
        Err(zeroshot::Error::Gpu(e)) if args.backend == BackendChoice::Auto => {
            eprintln!("zeroshot: the GPU failed ({e}); continuing on the CPU");
            *classifier = load_cpu(dir, args.threads)?;
            classifier.run(texts, labels, options, args.explain)
        }
        other => other,
    };
    Ok(match results {
        Ok(lines) => lines,
        Err(e) => texts.iter().map(|_| Err(e.to_string())).collect(),
    })
}

/// `zeroshot bench`: median ms per forward and GFLOP/s for each backend and shape.
fn bench(args: &BenchArgs) -> Result<(), String> {
    let shapes = parse_shapes(&args.shapes)?;
    if !args.models.is_empty() {
        return bench_models(args, &shapes);
    }
    let config = synthetic::typeform_config().map_err(|e| e.to_string())?;
    println!("typeform-shaped DistilBERT (random weights), median of {} forwards", args.runs);
    println!("{:<8}{:>10}{:>12}{:>10}  device", "backend", "shape", "ms", "GFLOP/s");
    if args.backend == "cpu" || args.backend == "both" {
        let backend = cpu_backend(args.threads);
        let mut model =
            Encoder::new(config.clone(), synthetic::random_weights(&config, 1), backend).map_err(|e| e.to_string())?;
        time_shapes(&mut model, &shapes, args.runs, "cpu")?;
    }
    if args.backend == "gpu" || args.backend == "both" {
        let gpu = bench_gpu()?;
        let name = gpu.adapter_name();
        let mut model =
            Encoder::new(config.clone(), synthetic::random_weights(&config, 1), gpu).map_err(|e| e.to_string())?;
        time_shapes(&mut model, &shapes, args.runs, &name)?;
    }
    Ok(())
}

/// `bench --models`: the folders' forwards on the chosen backends, interleaved run by run so that
/// the machine's drift falls on all alike; medians and ratios to the first model.
fn bench_models(args: &BenchArgs, shapes: &[(usize, usize)]) -> Result<(), String> {
    let mut models = Vec::new();
    for dir in &args.models {
        let load = || Checkpoint::from_dir(dir).map_err(|e| format!("{}: {e}", dir.display()));
        if args.backend == "cpu" || args.backend == "both" {
            let c = load()?;
            let model = Encoder::new(c.config, c.weights, cpu_backend(args.threads)).map_err(|e| e.to_string())?;
            models.push((format!("{} (cpu)", dir.display()), Box::new(model) as Box<dyn Forward>));
        }
        if args.backend == "gpu" || args.backend == "both" {
            let (c, gpu) = (load()?, bench_gpu()?);
            let name = format!("{} (gpu: {})", dir.display(), gpu.adapter_name());
            let model = Encoder::new(c.config, c.weights, gpu).map_err(|e| e.to_string())?;
            models.push((name, Box::new(model) as Box<dyn Forward>));
        }
    }
    println!("forwards, median of {} interleaved runs, ratio to the first model", args.runs);
    for &(batch, seq) in shapes {
        // Each model's own batch: RoBERTa's positions start past its padding id.
        let inputs: Vec<Batch> = models.iter().map(|(_, m)| bench_batch(batch, seq, m.first_position())).collect();
        let mut times = vec![Vec::new(); models.len()];
        for _ in 0..=args.runs.max(1) {
            for (((_, model), times), input) in models.iter_mut().zip(&mut times).zip(&inputs) {
                let start = Instant::now();
                model.forward_blocking(input)?;
                times.push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
        let medians: Vec<f64> = times.iter_mut().map(|t| median(&mut t[1..])).collect(); // run 0 warms up
        for ((name, _), ms) in models.iter().zip(&medians) {
            println!("{:>10}{:>10.2} ms{:>8.2}x  {name}", format!("{batch}x{seq}"), ms, ms / medians[0]);
        }
    }
    Ok(())
}

/// Any GPU adapter (software ones too: the bench says which ran).
fn bench_gpu() -> Result<GpuBackend, String> {
    let options = GpuOptions { allow_software: true, ..Default::default() };
    pollster::block_on(GpuBackend::new(options)).map_err(|e| e.to_string())
}

/// One forward to completion, whatever the backend, so models on different backends can be
/// timed side by side.
trait Forward {
    fn forward_blocking(&mut self, input: &Batch) -> Result<(), String>;
    /// Position id of a sequence's first token (see `Config::first_position`).
    fn first_position(&self) -> usize;
}

impl<B: Backend> Forward for Encoder<B> {
    fn forward_blocking(&mut self, input: &Batch) -> Result<(), String> {
        pollster::block_on(self.forward(input)).map(drop).map_err(|e| e.to_string())
    }

    fn first_position(&self) -> usize {
        self.config.first_position
    }
}

/// `batch` sequences of `seq` ordinary word ids ([CLS] first), positions from `first_position`:
/// the values do not change the work.
fn bench_batch(batch: usize, seq: usize, first_position: usize) -> Batch {
    let ids: Vec<Vec<u32>> =
        (0..batch).map(|b| (0..seq).map(|t| (101 + 17 * (b + t) % 20000) as u32).collect()).collect();
    Batch { first_position, ..Batch::pad(&ids) }
}

/// The middle value (the upper one of an even count).
fn median(times: &mut [f64]) -> f64 {
    times.sort_by(f64::total_cmp);
    times.get(times.len() / 2).copied().unwrap_or(f64::NAN)
}

fn parse_shapes(spec: &str) -> Result<Vec<(usize, usize)>, String> {
    spec.split(',')
        .map(|s| {
            let (b, l) = s.trim().split_once('x').ok_or(format!("shape {s:?} is not BATCHxTOKENS"))?;
            let parse =
                |v: &str| v.parse::<usize>().ok().filter(|&n| n > 0).ok_or(format!("bad number in shape {s:?}"));
            Ok((parse(b)?, parse(l)?))
        })
        .collect()
}

fn time_shapes<B: Backend>(
    model: &mut Encoder<B>,
    shapes: &[(usize, usize)],
    runs: usize,
    device: &str,
) -> Result<(), String> {
    for &(batch, seq) in shapes {
        let input = bench_batch(batch, seq, model.config.first_position);
        pollster::block_on(model.forward(&input)).map_err(|e| e.to_string())?;
        let mut times: Vec<f64> = (0..runs.max(1))
            .map(|_| {
                let start = Instant::now();
                pollster::block_on(model.forward(&input)).map(|_| start.elapsed().as_secs_f64() * 1e3)
            })
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        let ms = median(&mut times);
        let gflops = synthetic::forward_flops(&model.config, batch, seq) / ms / 1e6;
        println!("{:<8}{:>10}{:>12.2}{:>10.1}  {device}", model.backend_name(), format!("{batch}x{seq}"), ms, gflops);
    }
    Ok(())
}
