"""Synthetic degradations, training loop, evaluation and weight export."""
