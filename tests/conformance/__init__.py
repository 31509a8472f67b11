"""The conformance suite: one set of tests for every executor backend, through the real rings."""
