//! `zeroshot`: classify texts from the command line with a DistilBERT NLI model folder.
//!
//! ```text
//! zeroshot --model DIR --labels "a,b,c" [--template T] [--multi-label] [--backend auto|cpu|gpu] [TEXT ...]
//! ```
//! One JSON object per text per line. Without TEXT, reads texts from standard input, one per
//! line, streaming results; a failing line prints `{"line": n, "error": "..."}` and the run goes
//! on, ending with exit status 1.

#[cfg(not(target_arch = "wasm32"))]
mod cli;

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(target_arch = "wasm32")]
fn main() {}
