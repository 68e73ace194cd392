"""Entry points: the ``orchestrate`` CLI, configuration loading, the worker, the webhook server, telemetry."""
