from roost.cli.main import cli

cli(prog_name="roost")
