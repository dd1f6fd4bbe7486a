"""CloudWatch as SageMaker jobs use it: log groups and streams (``logs``), metrics from log lines (``metrics``)."""
