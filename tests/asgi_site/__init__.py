"""A tiny site served by a real ASGI server (uvicorn) for tests/test_asgi.py."""
