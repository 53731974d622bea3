from echo_agent.cli import app

app()
