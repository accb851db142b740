"""What both features need about a failed message: its stored state, the one place that changes it, its check."""
