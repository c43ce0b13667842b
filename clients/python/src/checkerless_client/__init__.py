"""The checkerless API from Python: `Client` (blocking) and `AsyncClient` (asyncio). Results
are typed dataclasses (results.py), errors are CheckerlessError subclasses (errors.py).
docs/client.md in the checkerless repository is the reference."""

from checkerless_client.async_client import AsyncClient
from checkerless_client.client import Client
from checkerless_client.errors import ApiError, ApiUnreachable, CheckerlessError, StylizationFailed, WaitTimeout
from checkerless_client.results import (Attempt, ContentSet, ContentSetProgress, Experiment, ExperimentBrief,
                                        ExperimentRun, Job, Page, Style, Stylization, Variant)
from checkerless_client.retry import RetryEvent, RetryPolicy
from checkerless_client.webhooks import DELIVERY_HEADER, SIGNATURE_HEADER, verify_webhook

__version__ = "0.1.0"
__all__ = [
    "ApiError", "ApiUnreachable", "AsyncClient", "Attempt", "CheckerlessError", "Client", "ContentSet",
    "ContentSetProgress", "DELIVERY_HEADER", "Experiment", "ExperimentBrief", "ExperimentRun", "Job", "Page",
    "RetryEvent", "RetryPolicy", "SIGNATURE_HEADER", "Style", "Stylization", "StylizationFailed", "Variant",
    "WaitTimeout", "verify_webhook",
]
