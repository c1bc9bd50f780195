"""Workers: the claim loop and the executors that run jobs."""
