from service.cli.main import run

run()
