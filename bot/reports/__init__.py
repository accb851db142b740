"""The weekly report: what failed, what retrying got delivered, what could not be retried; posted on a schedule."""
