"""The ``roost`` command."""

from __future__ import annotations

import click

from roost import __version__
from roost.cli.data import explore_cmd, im2rec_cmd, pack_cmd, sample_data_cmd
from roost.cli.jobs import jobs_cmd
from roost.cli.results import convert_weights_cmd, plot_cmd, report_cmd
from roost.cli.server import server_cmd
from roost.cli.serving import export_cmd, import_sagemaker_cmd, predict_cmd, serve_cmd
from roost.cli.train import container_cmd, train_cmd
from roost.cli.tune import tune_cmd


class RoostGroup(click.Group):
    """The ``roost`` command: a user's mistake in any subcommand is one line that says what is wrong and what to
    do (``Error: ...``, exit status 1), never a traceback. Roost's own bugs still show theirs."""

    def invoke(self, ctx: click.Context):
        from roost.errors import UserError

        try:
            return super().invoke(ctx)
        except UserError as err:
            raise click.ClickException(str(err)) from None
        except OSError as err:
            if err.filename is None:  # not about a file the user named
                raise
            raise click.ClickException(f"{err.filename}: {err.strerror or err}") from None


@click.group(cls=RoostGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="roost")
def cli() -> None:
    """Roost: SageMaker's built-in Image Classification workflow on your own machine.

    Pack images into MXNet RecordIO, explore data sets, train and serve models
    with SageMaker's hyperparameters, files and APIs.
    """


for command in (
    im2rec_cmd,
    pack_cmd,
    explore_cmd,
    sample_data_cmd,
    train_cmd,
    container_cmd,
    plot_cmd,
    report_cmd,
    convert_weights_cmd,
    server_cmd,
    jobs_cmd,
    tune_cmd,
    predict_cmd,
    serve_cmd,
    import_sagemaker_cmd,
    export_cmd,
):
    cli.add_command(command)


if __name__ == "__main__":  # pragma: no cover
    cli()
