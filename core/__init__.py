"""Shared core: plan model and validation, settings, errors, the model gateway."""
