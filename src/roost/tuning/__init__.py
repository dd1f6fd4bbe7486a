"""Hyperparameter tuning jobs on Optuna: SageMaker's tuning-job operations and what a request means (``service``),
ranges and strategies in Optuna's terms (``search``), and the ask-and-tell loop that runs a tuning job (``tuner``)."""
