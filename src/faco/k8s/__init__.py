"""Kubernetes side of faco: compile-time cluster settings, training-job objects, job watching."""
