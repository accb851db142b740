"""The retry service: listeners hand it requests; its worker and notifier do the rest in the background."""
