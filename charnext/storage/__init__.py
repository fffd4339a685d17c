"""What is kept on disk: the safetensors file, checkpoints (formats 1 and 2), the metrics log."""
