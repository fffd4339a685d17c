"""Using a trained model: per-step predictions, the sampler, scoring and surprise."""
