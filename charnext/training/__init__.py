"""Training: building a run, the planner, the loop, the corpus, schedule, divergence, processes."""
