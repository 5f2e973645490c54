"""docker-compose.yml: web, worker, beat, PostgreSQL and Redis, wired as docs/DEPLOY.md says
(no Docker engine here: the file is checked as data)."""

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = ("web", "worker", "beat")
ENTRYPOINT_ROLES = ("web", "worker", "beat", "migrate")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_it_has_the_five_services_each_with_a_healthcheck(compose):
    services = compose["services"]

    assert set(services) == {"web", "worker", "beat", "db", "redis"}
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check and check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert len(check["test"]) > 1, name


def test_the_app_services_run_the_image_with_one_role_each(compose):
    for name in APP_SERVICES:
        service = compose["services"][name]
        assert service["build"] == "." and (ROOT / "Dockerfile").is_file(), name
        (role,) = service["command"]
        assert role == name and role in ENTRYPOINT_ROLES


def test_the_app_services_reach_postgresql_and_redis_by_url(compose):
    for name in APP_SERVICES:
        env = compose["services"][name]["environment"]
        assert env["DATABASE_URL"].startswith("postgres://") and "@db:5432/" in env["DATABASE_URL"]
        # the password is not in the URL (one with "@" or "/" would break it): libpq reads it
        assert env["DATABASE_URL"] == "postgres://moe@db:5432/moe", name
        assert env["PGPASSWORD"] == compose["services"]["db"]["environment"]["POSTGRES_PASSWORD"]
        assert env["REDIS_URL"].startswith("redis://redis:6379/")
        assert "DJANGO_SECRET_KEY" in env, name


def test_the_app_services_start_after_healthy_dependencies(compose):
    services = compose["services"]
    for name in APP_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["db"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name
    # web migrates; worker and beat read tables, so they wait for it
    assert services["web"]["environment"]["MOE_MIGRATE"] == "1"
    for name in ("worker", "beat"):
        assert services[name]["depends_on"]["web"]["condition"] == "service_healthy"
        assert "MOE_MIGRATE" not in services[name]["environment"]


def test_there_is_exactly_one_beat_and_data_lives_in_named_volumes(compose):
    services = compose["services"]
    assert sum(1 for s in services.values() if s.get("command") == ["beat"]) == 1
    assert "deploy" not in services["beat"]  # no replicas
    for name in ("db", "redis"):
        for volume in services[name]["volumes"]:
            assert volume.split(":")[0] in compose["volumes"], name


def test_the_web_service_publishes_its_port_and_runs_several_workers(compose):
    web = compose["services"]["web"]

    assert any(str(p).endswith(":8005") for p in web["ports"])
    assert web["environment"]["MOE_WEB_WORKERS"].strip("${}").split(":-")[-1] == "2"
    assert "8005/api/v1/ping" in " ".join(web["healthcheck"]["test"])
