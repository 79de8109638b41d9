"""The paper's harness: benchmark runner and variants, effects, learning curve, claims, peers, oracle, speed
benchmarks. May import cilf.app and everything below it; not cilf.notebook or cilf.cli."""
