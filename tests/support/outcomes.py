"""Report a routed request's outcome through the API (DRF test client)."""


def report(client, request_id, service_id, success=True, latency_ms=100.0):
    return client.post(
        f"/api/v1/route/{request_id}/outcome",
        {"service_id": service_id, "success": success, "latency_ms": latency_ms},
        format="json",
    )
