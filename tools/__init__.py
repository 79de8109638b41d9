"""Repository tooling (not installed with cilf): the notebook runner, the whole-job timer, table writers."""
