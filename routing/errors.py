"""Domain errors of routing, free of HTTP: the API maps them to status codes and the error
JSON in one place (``moe_project.api_errors``)."""

from __future__ import annotations


class RoutingError(Exception):
    """A request the router cannot act on; ``fields`` names the offending inputs."""

    def __init__(self, message: str, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


class InvalidRoutingInput(RoutingError):
    """Input that is well-formed but does not fit the fleet or the decision."""


class UnknownRequest(RoutingError):
    """No routed request with that id."""


class RegistryUnavailable(RoutingError):
    """No fleet to route on: the registry (the database) could not be read, and this worker
    has not loaded the fleet before (once it has, it keeps routing on the last one)."""


class LiveStateUnavailable(RoutingError):
    """The shared live state (Redis) cannot be reached, and what was asked needs it: an outcome
    whose decision is only there (not yet in the database) cannot be checked or claimed."""


class OutcomeAlreadyReported(RoutingError):
    """That service's outcome for that request was reported before."""
