"""The application around the model: features and their cache, training (one process or torchrun),
evaluation, prediction, CLIP pretraining, benchmarks, speed benchmarks, peer methods."""
