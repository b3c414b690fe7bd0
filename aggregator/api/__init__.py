"""The HTTP API: FastAPI app and its routers."""
