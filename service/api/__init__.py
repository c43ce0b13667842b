"""The HTTP API (FastAPI) and the web pages. It imports the job core and the torch-free parts
of models; never the workers, never torch."""
