"""The HTTP layer: FastAPI routers, request and response models, dependencies."""
