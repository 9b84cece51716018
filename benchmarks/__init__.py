"""Scale benchmarks: generated returns in the real format, timed against a naive script and the parse floor."""
