"""Development tooling, outside the runtime path: the local stack, the demo, seeding, synthetic
files and the benchmarks. Only the CLI (and tests) import it; an import-linter contract checks that."""
