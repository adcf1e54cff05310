# Sourced by build-web.sh and test.sh: the toolchain and flags of the wasm threads build, in one place.
# Threads need std rebuilt with atomics (-Z build-std): one dated nightly, pinned here.
NIGHTLY=nightly-2026-05-20
# Atomics, and a memory imported and shared with the pool's workers, with the thread-local storage
# exports wasm-bindgen's thread transform needs; the memory cap is 4 GiB (rustc's default is 1 GiB).
THREADS_LINK="--shared-memory --import-memory --max-memory=4294967296 --export=__wasm_init_tls --export=__tls_size --export=__tls_align --export=__tls_base"
# LLVM keeps the source's instruction order, so the dot kernel's 6 x 2 FMA blocks fit V8's
# registers (src/backend/dot.rs, BLOCK).
THREADS_RUSTFLAGS="-C target-feature=+simd128,+relaxed-simd,+atomics,+bulk-memory,+mutable-globals -C llvm-args=-pre-RA-sched=source$(printf -- ' -C link-arg=%s' $THREADS_LINK)"
THREADS_CARGO_ARGS="--features threads -Z build-std=panic_abort,std"
rustup toolchain install "$NIGHTLY" --profile minimal --component rust-src,clippy --target wasm32-unknown-unknown >/dev/null
