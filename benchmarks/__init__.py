"""Side-by-side benchmarks against the anchors; each writes benchmarks/results/NAME.json and RESULTS.md."""
