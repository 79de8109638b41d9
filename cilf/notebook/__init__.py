"""What the notebooks call: cached demo models (zoo), analyses, figures, notebook tooling."""
