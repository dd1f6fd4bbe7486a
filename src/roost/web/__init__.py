"""The console: SageMaker's pages for Roost, served by ``roost server`` under ``/console``.

Server-rendered Jinja2 pages, htmx for forms and actions, uPlot for charts (both
vendored under ``static/vendor`` with their licences), server-sent events for
everything live. Every page reads and changes state through the same operations
the AWS API dispatches (``roost.aws.dispatch_table``), so a form gets exactly
the API's validation and errors, placed beside the fields they name.
"""
