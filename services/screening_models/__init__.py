"""Screening models: training, the model registry, batch scoring, and the review-first ranking."""
