//! `zeroshot`: classify texts from the command line with an NLI model folder (DistilBERT, BERT, RoBERTa, XLM-R).
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
    keep_freed_memory();
    cli::main()
}

/// Makes glibc's malloc keep what a forward frees for the next one. By default it serves every
/// block over 128 KB (a forward's activations: 0.3-1.3 MB each for one text x 5 labels) with a
/// fresh `mmap` and returns it on free, and trims its heaps, so each forward touches about 10 MB
/// of new pages: 2,500 page faults per text, each zeroing a page in the kernel. Measured on the
/// full-size model, one text x 5 labels, on a 2-core AMD EPYC: 0.93x the time per text at 1
/// thread, 0.86x at 2 (`bench/compare_cpu.py`'s timing, interleaved). The cost: after a forward
/// the process keeps the memory it used (resident) instead of returning it to the system.
#[cfg(not(target_arch = "wasm32"))]
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it is called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20); // blocks under 64 MB come from the heaps
        libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20); // which keep what is freed
        libc::mallopt(libc::M_TOP_PAD, 64 << 20); // and grow in large steps
    }
}

#[cfg(target_arch = "wasm32")]
fn main() {}
