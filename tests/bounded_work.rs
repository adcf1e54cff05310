//! Work and memory grow with the text plus the labels, not with their product: the tokenizer's
//! own truncation of a long text with a long hypothesis would build every overflow piece of the
//! text for every label (about 1 GB per label for 200 KB), so zeroshot cuts the text itself
//! (`src/tokenizer.rs`). This binary counts its own heap to prove it.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use common::files;
use zeroshot::{Checkpoint, CpuBackend, Options, ZeroShotClassifier};

/// The system allocator, counting live bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        grew(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Peak heap growth (bytes above what was live before) while `f` runs.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let out = f();
    (out, PEAK.load(Ordering::Relaxed) - before)
}

// One test in this binary, so no other test's allocations are counted.
#[test]
fn a_long_text_with_long_hypotheses_stays_small() {
    let mut c =
        ZeroShotClassifier::new(Checkpoint::load(files("typeform-layout")).unwrap(), CpuBackend::new(1)).unwrap();
    let text = "word ".repeat(40_000); // 200 KB, 40,000 tokens; the model takes 512
    // Each hypothesis leaves the text 3 tokens: the tokenizer's truncation would make ~13,000
    // pieces per label.
    let labels: Vec<String> = (0..5).map(|i| format!("{} {i}", "very ".repeat(500))).collect();
    let options = Options { hypothesis_template: "{}".into(), multi_label: false };
    let start = Instant::now();
    let (result, peak) = peak_during(|| pollster::block_on(c.classify(&text, &labels, &options)));
    let result = result.expect("classifies");
    assert!(result.truncated);
    println!("200 KB text x 5 labels: peak heap +{} MB, {:.2?}", peak >> 20, start.elapsed());
    // The text (200 KB), its 40,000 tokens with offsets, five 512-token rows and their
    // activations: a few MB. Overflow pieces would be hundreds.
    assert!(peak < 32 << 20, "peak heap grew by {peak} bytes");

    // WordPiece is cubic in word length up to its limit (100 here): 200 KB of 100-letter words
    // of single-letter pieces is its worst case. Time is printed, memory asserted.
    let words = format!("{} ", "q".repeat(100)).repeat(2_000);
    let start = Instant::now();
    let (result, peak) = peak_during(|| pollster::block_on(c.classify(&words, &labels[..1], &Options::default())));
    result.expect("classifies");
    println!("200 KB of 100-letter words: peak heap +{} MB, {:.2?}", peak >> 20, start.elapsed());
    assert!(peak < 32 << 20, "peak heap grew by {peak} bytes");
}
