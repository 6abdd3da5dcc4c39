"""Shared pytest configuration: backing-service fixtures (see docs/testing-services.md) and face fixtures."""

pytest_plugins = ["tests.service_fixtures", "tests.faces", "tests.central_app"]
