# Short aliases. Every recipe is a plain script, so nothing here needs `just` installed.

# Start the demo: Envoy + the filter + a real MCP server, with demo tokens.
demo:
    bash scripts/demo.sh

# Every test: fmt, clippy (host and wasm), unit and end-to-end.
test:
    bash scripts/test.sh

# Benchmarks (about 15 minutes; ROUNDS=2 DURATION=1 for a quick look).
bench:
    bash bench/run.sh

# Install the toolchain target, Envoy, npm packages.
setup:
    bash scripts/setup.sh
